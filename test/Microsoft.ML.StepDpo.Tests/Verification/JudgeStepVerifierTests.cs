using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tests.Pipeline;
using Microsoft.ML.StepDpo.Verification;
using Microsoft.ML.StepDpo.Sampling;

using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Verification;

[TestClass]
public sealed class JudgeStepVerifierTests
{
    private const StepVerdict C = StepVerdict.Correct, N = StepVerdict.Neutral, I = StepVerdict.Incorrect, U = StepVerdict.Unknown;

    public static IEnumerable<object[]> Replies() => new[]
    {
        new object[] { "The first two steps are fine, step 3 adds wrongly.\n\nFinal Decision:\nStep 1: correct; Step 2: correct; Step 3: incorrect", new[] { C, C, I, U } },
        new object[] { "analysis...\nFinal Decision: Step 1: Correct; Step 2: Neutral; Step 3: Correct; Step 4: Correct", new[] { C, N, C, C } },
        // Markdown, one per line, bold step labels.
        new object[] { "### Analysis\nfine\n\n**Final Decision:**\n- **Step 1**: Correct\n- **Step 2**: Incorrect\n", new[] { C, I, U, U } },
        // Dashes and "is".
        new object[] { "FINAL DECISION\nStep 1 - correct\nStep 2 is correct\nStep 3 – wrong", new[] { C, C, I, U } },
        // Only the text after the LAST "final decision" counts (the model restated the format first).
        new object[] { "I will end with a Final Decision: Step 1: incorrect as the format.\n...\nFinal decision: Step 1: correct; Step 2: incorrect", new[] { C, I, U, U } },
        // "incorrect" must not be read as "correct".
        new object[] { "Final Decision: step 1: incorrect", new[] { I, U, U, U } },
        // Numbered list without "Step".
        new object[] { "Final Decision:\n1. correct\n2. correct\n3. neutral\n4. incorrect", new[] { C, C, N, I } },
        // Steps the judge did not mention, and steps beyond the solution, are ignored.
        new object[] { "Final Decision: Step 2: correct; Step 9: incorrect", new[] { U, C, U, U } },
        // Verdicts after the first incorrect step are dropped; a repeated step keeps its first verdict.
        new object[] { "Final Decision: Step 1: incorrect; Step 2: correct; Step 1: correct", new[] { I, U, U, U } },
        new object[] { "Final Decision: Step 1: not correct", new[] { I, U, U, U } },
        new object[] { "final decision:step1:correct;step2:correct;step3:correct;step4:incorrect", new[] { C, C, C, I } },
    };

    [TestMethod]
    [DynamicData(nameof(Replies))]
    public void ParsesVerdictBlocks(string reply, StepVerdict[] expected)
    {
        CollectionAssert.AreEqual(expected, JudgeReplyParser.Parse(reply, 4));
    }

    [TestMethod]
    [DataRow(null)]
    [DataRow("")]
    [DataRow("Step 1: correct; Step 2: incorrect")] // no "final decision" heading
    [DataRow("Final Decision: I cannot decide.")]
    [DataRow("Final Decision:")]
    [DataRow("final decision: step one is fine")]
    public void MalformedRepliesHaveNoVerdicts(string? reply)
    {
        Assert.IsNull(JudgeReplyParser.Parse(reply, 4));
    }

    private static readonly StepVerificationInput s_input = new(
        "Mia has 12 books. Mia buys 6 boxes of 9. How many books now?",
        new[] { "6*9=54.", "12+54=68.", "The answer is 68." }, "66", "Step 1: 6*9=54.\nStep 2: 12+54=66.\nThe answer is 66.");

    [TestMethod]
    public async Task AsksWithProblemReferenceAndNumberedStepsAndReadsTheReply()
    {
        var client = new ScriptedChatClient((_, _, _) => "Step 2 adds 12 and 54 wrongly.\nFinal Decision: Step 1: correct; Step 2: incorrect");
        var judge = new JudgeStepVerifier(client, modelId: "judge-model");
        var checks = await judge.VerifyAsync(s_input);
        CollectionAssert.AreEqual(new[] { C, I, U }, checks.Select(c => c.Verdict).ToArray());
        StringAssert.Contains(checks[1].Evidence, "adds 12 and 54 wrongly");

        Assert.IsTrue(client.Sent.TryDequeue(out var sent));
        Assert.AreEqual("judge-model", sent.Options?.ModelId);
        Assert.AreEqual(0f, sent.Options?.Temperature);
        string user = sent.Messages.Last(m => m.Role == ChatRole.User).Text;
        StringAssert.Contains(user, s_input.Problem);
        StringAssert.Contains(user, "Step 2: 12+54=66."); // the reference solution
        StringAssert.Contains(user, "Step 2: 12+54=68."); // the student's step, numbered
        StringAssert.Contains(user, "Final Decision:");

        var located = await new FirstErrorLocator(new[] { judge }).LocateAsync(s_input);
        Assert.AreEqual(2, located.FirstErrorStep);
    }

    [TestMethod]
    public async Task FailuresAndGarbageBecomeUnknownNeverExceptions()
    {
        var garbage = new JudgeStepVerifier(new ScriptedChatClient((_, _, _) => "I think it's all fine!"));
        var checks = await garbage.VerifyAsync(s_input);
        Assert.IsTrue(checks.All(c => c.Verdict == U));
        StringAssert.Contains(checks[0].Evidence, "no readable Final Decision");

        var throwing = new JudgeStepVerifier(new ScriptedChatClient((_, _, _) => throw new InvalidOperationException("boom")), retry: RetryPolicy.None);
        var failed = await throwing.VerifyAsync(s_input);
        Assert.IsTrue(failed.All(c => c.Verdict == U));
        StringAssert.Contains(failed[0].Evidence, "judge failed: boom");

        // Transient errors are retried: two 503s, then an answer.
        var flaky = new ScriptedChatClient((_, _, call) => call <= 2
            ? throw new HttpRequestException("busy", null, System.Net.HttpStatusCode.ServiceUnavailable)
            : "Final Decision: Step 1: neutral");
        var retried = await new JudgeStepVerifier(flaky, retry: new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(1) }).VerifyAsync(s_input);
        Assert.AreEqual(3, flaky.Calls);
        CollectionAssert.AreEqual(new[] { N, U, U }, retried.Select(c => c.Verdict).ToArray());
        var neutralIsError = await new FirstErrorLocator(new[] { new JudgeStepVerifier(new ScriptedChatClient((_, _, _) => "Final Decision: Step 1: neutral")) }, neutralIsError: true).LocateAsync(s_input);
        Assert.AreEqual(1, neutralIsError.FirstErrorStep);
    }
}
