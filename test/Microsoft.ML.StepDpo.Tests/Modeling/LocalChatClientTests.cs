using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class LocalChatClientTests
{
    private static (LocalChatClient Client, Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tok) Create()
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2), seed: 4);
        return (new LocalChatClient(model, tok, "tiny"), model, tok);
    }

    [TestMethod]
    public async Task ReplyEqualsGreedyGenerationOfTheChatMlPrompt()
    {
        var (client, model, tok) = Create();
        var messages = new[] { new ChatMessage(ChatRole.User, "What is 2+3?") };
        var reply = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 12 });

        string prompt = LocalChatClient.ChatMl(messages);
        StringAssert.StartsWith(prompt, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n");
        StringAssert.EndsWith(prompt, "<|im_start|>assistant\n");
        var expected = new TextGenerator(model, ids => tok.Decode(ids))
            .Generate(((ITextTokenizer)tok).Encode(prompt), new GenerationOptions { MaxNewTokens = 12, StopStrings = new[] { "<|im_end|>" }, EosIds = tok.EosId is int e ? new[] { e } : Array.Empty<int>() });
        Assert.AreEqual(expected.Text, reply.Text);
        Assert.AreEqual(ChatRole.Assistant, reply.Messages[0].Role);
        Assert.AreEqual("tiny", reply.ModelId);
    }

    [TestMethod]
    public async Task StreamingConcatenatesToTheSameReplyAndSamplingIsSeeded()
    {
        var (client, _, _) = Create();
        var messages = new[] { new ChatMessage(ChatRole.User, "Count: 1 2 3") };
        var options = new ChatOptions { MaxOutputTokens = 16, Temperature = 0.9f, TopP = 0.95f, Seed = 7 };
        var whole = await client.GetResponseAsync(messages, options);
        var pieces = new List<string>();
        await foreach (var u in client.GetStreamingResponseAsync(messages, options)) pieces.Add(u.Text);
        Assert.AreEqual(whole.Text, string.Concat(pieces));
        var again = await client.GetResponseAsync(messages, options);
        Assert.AreEqual(whole.Text, again.Text);
        Assert.AreSame(client, client.GetService(typeof(IChatClient)));
    }
}
