using System.Text;
using System.Text.Json;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using static Microsoft.ML.StepDpo.Tests.Tokenization.TokenizerFixtures;

namespace Microsoft.ML.StepDpo.Tests.Tokenization;

[TestClass]
public sealed class JsonlFieldTokenizerTests
{
    [TestMethod]
    public void AddsIds_KeepsOtherFields_RecognisesSpecialTokens()
    {
        string input = string.Join("\n",
            """{"prompt":"<|im_start|>user\nWhat is 2+2?<|im_end|>","n":1,"tags":["a","é"]}""",
            "",
            """{"prompt":"Step 1: 2+2=4.","ids":[9,9]}""") + "\n";
        using var output = new MemoryStream();
        var (records, tokens) = JsonlFieldTokenizer.Run(t => Qwen.Encode(t), new StringReader(input), output, "prompt");

        var lines = Encoding.UTF8.GetString(output.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(2, records);
        Assert.HasCount(2, lines);
        using var first = JsonDocument.Parse(lines[0]);
        int[] ids = first.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        CollectionAssert.AreEqual(Qwen.Encode("<|im_start|>user\nWhat is 2+2?<|im_end|>"), ids);
        Assert.AreEqual(151644, ids[0]);
        Assert.AreEqual(1, first.RootElement.GetProperty("n").GetInt32());
        Assert.AreEqual("é", first.RootElement.GetProperty("tags")[1].GetString());
        using var second = JsonDocument.Parse(lines[1]);
        CollectionAssert.AreEqual(Qwen.Encode("Step 1: 2+2=4."), second.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), "an existing ids field is replaced");
        Assert.AreEqual(ids.Length + Qwen.Encode("Step 1: 2+2=4.").Length, tokens);
    }

    [TestMethod]
    public void BadRecords_NameTheLine()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            JsonlFieldTokenizer.Run(t => [], new StringReader("{\"text\":\"a\"}\n{\"other\":1}\n"), new MemoryStream(), "text"));
        StringAssert.Contains(e.Message, "Line 2");
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() =>
            JsonlFieldTokenizer.Run(t => [], new StringReader("{not json}\n"), new MemoryStream(), "text"));
        StringAssert.Contains(e2.Message, "Line 1");
    }
}
