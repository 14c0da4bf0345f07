using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Tests.Text;

[TestClass]
public sealed class PromptTemplateTests
{
    [TestMethod]
    public void BuiltInFormatsJoinAsTheReference()
    {
        Assert.AreEqual("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\nLet's think step by step.\nStep 1:",
            PromptTemplate.Alpaca.Build("What is 2+2?", "Let's think step by step.\nStep 1:"));
        Assert.AreEqual("User: Q\nPlease reason step by step, and put your final answer within \\boxed{}.\n\nAssistant: Step 1: a",
            PromptTemplate.DeepSeekMath.Build("Q", "Step 1: a"));
        Assert.AreEqual("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\nStep 1:",
            PromptTemplate.Qwen2Boxed.Build("Q", "Step 1:"));
        Assert.AreEqual(PromptTemplate.Alpaca.Fill("Q"), PromptTemplate.Alpaca.Build("Q", ""));
        Assert.IsTrue(PromptTemplate.Alpaca.BuildForEvaluation("Q").EndsWith("### Response:\nLet's think step by step.\nStep 1: ", StringComparison.Ordinal));
        Assert.AreSame(PromptTemplate.DeepSeekMath, PromptTemplate.BuiltIn["DeepSeek-Math"]);
        var custom = new PromptTemplate("mine", "Q: {instruction}\nA:", " ");
        Assert.AreEqual("Q: 1+1\nA: Step 1:", custom.Build("1+1", "Step 1:"));
    }
}
