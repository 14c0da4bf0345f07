namespace Microsoft.ML.StepDpo.Text;

/// <summary>How a solution is cut into steps.</summary>
public enum SegmentationMode
{
    /// <summary>"Step k:" markers when the text has any; otherwise blank-line paragraphs when there are two or more; otherwise lines.</summary>
    Auto = 0,
    /// <summary>Each "Step k:" marker (also "Step k.", "**Step k:**", "### Step k:") starts a step; the marker is not part of the step.</summary>
    StepMarkers = 1,
    /// <summary>Paragraphs separated by one or more blank lines.</summary>
    Paragraphs = 2,
    /// <summary>Non-blank lines.</summary>
    Lines = 3,
    /// <summary>Each match of <see cref="StepSegmenter.Options.CustomPattern"/> starts a step; the match is not part of the step.</summary>
    CustomPattern = 4,
}

/// <summary>What happens to a final-answer line ("The answer is …", "#### …", or a line holding only \boxed{…}).</summary>
public enum AnswerLineHandling
{
    /// <summary>The answer line stays in the last step (the layout of Step-DPO data).</summary>
    KeepInLastStep = 0,
    /// <summary>The answer line is a step of its own.</summary>
    SeparateStep = 1,
    /// <summary>The answer line is dropped.</summary>
    Drop = 2,
}
