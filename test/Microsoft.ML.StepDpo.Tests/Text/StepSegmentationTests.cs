using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Tests.Text;

[TestClass]
public sealed class StepSegmentationTests
{
    private static string[] Seg(string? text, SegmentationMode mode = SegmentationMode.Auto, AnswerLineHandling answer = AnswerLineHandling.KeepInLastStep, bool keepPreamble = false)
        => StepSegmentation.Segment(text, new SegmentationSettings { Mode = mode, AnswerLine = answer, KeepPreamble = keepPreamble })
            .Select(s => s.Text).ToArray();

    [TestMethod]
    public void MarkersWithPreambleAndAnswerLine()
    {
        const string text = "Let's think step by step.\nStep 1: 3 apples plus 4 apples is 7 apples.\nStep 2: Half of 7 is 3.5.\nThe answer is: 3.5";
        CollectionAssert.AreEqual(new[] { "3 apples plus 4 apples is 7 apples.", "Half of 7 is 3.5.\nThe answer is: 3.5" }, Seg(text));
        CollectionAssert.AreEqual(new[] { "3 apples plus 4 apples is 7 apples.", "Half of 7 is 3.5.", "The answer is: 3.5" }, Seg(text, answer: AnswerLineHandling.SeparateStep));
        CollectionAssert.AreEqual(new[] { "3 apples plus 4 apples is 7 apples.", "Half of 7 is 3.5." }, Seg(text, answer: AnswerLineHandling.Drop));
        CollectionAssert.AreEqual(new[] { "Let's think step by step.", "3 apples plus 4 apples is 7 apples.", "Half of 7 is 3.5.\nThe answer is: 3.5" }, Seg(text, keepPreamble: true));
    }

    [TestMethod]
    public void MarkerVariantsCrlfAndBlankLines()
    {
        const string text = "**Step 1:** Add.\r\n\r\n\r\n**Step 2**: Multiply.\r\nStep 3. Divide.\r\n### Step 4: Done\r\n\r\n#### 12";
        CollectionAssert.AreEqual(new[] { "Add.", "Multiply.", "Divide.", "Done" }, Seg(text, answer: AnswerLineHandling.Drop));
        CollectionAssert.AreEqual(new[] { "Add.", "Multiply.", "Divide.", "Done", "#### 12" }, Seg(text, answer: AnswerLineHandling.SeparateStep));
    }

    [TestMethod]
    public void InlinePreambleMarkerAndUnfinishedPrefix()
    {
        // The published initial_reason_steps end right after the marker of the step in question.
        const string prefix = "Let's think step by step. Step 1: We have $x+1=3$.\nStep 2: So $x=2$.\nStep 3:";
        CollectionAssert.AreEqual(new[] { "We have $x+1=3$.", "So $x=2$." }, Seg(prefix));
        var steps = StepSegmentation.Segment(prefix, new SegmentationSettings());
        Assert.AreEqual(prefix.IndexOf("We have", StringComparison.Ordinal), steps[0].Offset);
        Assert.AreEqual(prefix.IndexOf("So $x", StringComparison.Ordinal), steps[1].Offset);
    }

    [TestMethod]
    public void DecimalAfterStepWordIsNotAMarker()
    {
        CollectionAssert.AreEqual(new[] { "Use Step 1.5 of the manual." }, Seg("Use Step 1.5 of the manual.", SegmentationMode.StepMarkers));
    }

    [TestMethod]
    public void AutoFallsBackToParagraphsThenLines()
    {
        CollectionAssert.AreEqual(new[] { "First we add.\nStill adding.", "Then we divide." }, Seg("First we add.\nStill adding.\n\n  \nThen we divide.\n"));
        CollectionAssert.AreEqual(new[] { "First we add.", "Then we divide.", "\\boxed{4}" }, Seg("First we add.\nThen we divide.\n$\\boxed{4}$", answer: AnswerLineHandling.SeparateStep).Select(s => s.Trim('$')).ToArray());
        CollectionAssert.AreEqual(new[] { "a", "b" }, Seg("a\n\nb", SegmentationMode.Lines));
        CollectionAssert.AreEqual(new[] { "Step 1: a\nStep 2: b" }, Seg("Step 1: a\nStep 2: b", SegmentationMode.Paragraphs));
    }

    [TestMethod]
    public void EmptyOrWhitespaceGivesNoSteps()
    {
        Assert.AreEqual(0, Seg(null).Length);
        Assert.AreEqual(0, Seg("").Length);
        Assert.AreEqual(0, Seg(" \r\n\t ").Length);
        Assert.AreEqual(0, Seg("Let's think step by step.").Length);
        Assert.AreEqual(0, Seg("The answer is 5", answer: AnswerLineHandling.Drop).Length);
        CollectionAssert.AreEqual(new[] { "The answer is 5" }, Seg("The answer is 5"));
    }

    [TestMethod]
    public void CustomPattern()
    {
        var settings = new SegmentationSettings { Mode = SegmentationMode.CustomPattern, CustomPattern = @"^\(\d+\)" };
        var steps = StepSegmentation.Segment("Intro\n(1) one\n(2) two", settings, StepSegmentation.CompileCustom(settings.CustomPattern));
        CollectionAssert.AreEqual(new[] { "Intro", "one", "two" }, steps.Select(s => s.Text).ToArray());
    }

    [TestMethod]
    public void OffsetsPointAtStepText()
    {
        const string text = "Step 1:  alpha\r\nStep 2: beta\nThe answer is 3";
        foreach (var mode in new[] { SegmentationMode.Auto, SegmentationMode.Lines, SegmentationMode.Paragraphs })
            foreach (var s in StepSegmentation.Segment(text, new SegmentationSettings { Mode = mode }))
                Assert.AreEqual(s.Text, text.Substring(s.Offset, s.Text.Length));
    }
}
