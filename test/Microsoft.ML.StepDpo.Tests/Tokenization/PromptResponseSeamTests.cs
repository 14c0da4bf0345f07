using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using static Microsoft.ML.StepDpo.Tests.Tokenization.TokenizerFixtures;

namespace Microsoft.ML.StepDpo.Tests.Tokenization;

[TestClass]
public sealed class PromptResponseSeamTests
{
    [TestMethod]
    [DataRow("Let's think step by step.\nStep 1: ", "Let x be 3.")]      // prompt ends in a space: " Let" is one BPE token
    [DataRow("The answer is 4", "2.")]                                   // digits never merge, but "is 4" + "2" must still split at a differing token
    [DataRow("The answ", "er is 5.")]                                    // a partial word
    [DataRow("Compute 12*7 =", " 84")]                                   // response starts with a space
    public void PartsConcatenateToTheFullTokens_AndTheResponseStartsWhereTheyDiffer(string prompt, string response)
    {
        ITextTokenizer tok = Qwen;
        var (promptIds, responseIds) = tok.TokenizeSeam(prompt, response);
        int[] full = tok.Encode(prompt + response);
        int[] alone = tok.Encode(prompt);
        CollectionAssert.AreEqual(full, promptIds.Concat(responseIds).ToArray());
        CollectionAssert.AreEqual(alone.Take(promptIds.Length).ToArray(), promptIds, "the prompt part is a prefix of the prompt's own tokens");
        Assert.IsNotEmpty(responseIds);
        if (promptIds.Length < alone.Length)
            Assert.AreNotEqual(alone[promptIds.Length], responseIds[0], "the response begins at the first differing token");
    }

    [TestMethod]
    public void MergeAcrossTheSeam_MovesTheMergedTokenToTheResponse()
    {
        ITextTokenizer tok = Qwen;
        const string prompt = "Step 1: ";
        var (promptIds, responseIds) = tok.TokenizeSeam(prompt, "Let");
        int[] alone = tok.Encode(prompt);
        Assert.AreEqual("Step 1:", tok.Decode(promptIds), "the trailing space merged into the response");
        Assert.AreEqual(" Let", tok.Decode(responseIds));
        Assert.HasCount(alone.Length - 1, promptIds);
    }

    [TestMethod]
    public void NoMergeAtTheSeam_KeepsThePromptTokensWhole()
    {
        ITextTokenizer tok = Qwen;
        const string prompt = "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n";
        var (promptIds, responseIds) = tok.TokenizeSeam(prompt, "Step 1: 3+4=7.");
        CollectionAssert.AreEqual(tok.Encode(prompt), promptIds);
        Assert.AreEqual("Step 1: 3+4=7.", tok.Decode(responseIds));

        ITextTokenizer chars = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var (p, r) = chars.TokenizeSeam("12+3=", "15");
        Assert.HasCount(5, p);
        Assert.HasCount(2, r);
    }

    [TestMethod]
    public void EmptyResponse_GivesThePromptTokens()
    {
        ITextTokenizer tok = Qwen;
        var (promptIds, responseIds) = tok.TokenizeSeam("Step 1: ", "");
        CollectionAssert.AreEqual(tok.Encode("Step 1: "), promptIds);
        Assert.IsEmpty(responseIds);
    }
}
