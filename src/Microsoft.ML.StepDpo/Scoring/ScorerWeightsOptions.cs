using System.Globalization;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// Where the weights of a full-fine-tuning step scorer live once it is saved with <c>mlContext.Model.Save</c>: inside
/// the zip when policy and reference together are small (self-contained, as for the demo model), else in Hugging Face
/// folders that the zip references by absolute path and SHA-256 — the trained policy in <see cref="PolicyDirectory"/>,
/// the reference model πref in the base model folder it started from. LoRA scorers always carry their adapters and
/// reference their base model folder.
/// </summary>
public sealed class ScorerWeightsOptions
{
    /// <summary>The default of <see cref="EmbedLimitBytes"/>: 256 MiB.</summary>
    public const long DefaultEmbedLimitBytes = 256L << 20;

    /// <summary>The largest <see cref="EmbedLimitBytes"/> allowed: 1 GiB. An embedded scorer passes through memory as a
    /// few whole copies when it is saved and loaded (a .NET array holds at most about 2 GB).</summary>
    public const long MaxEmbedLimitBytes = 1L << 30;

    /// <summary>
    /// Policy and reference weights of at most this many bytes together are embedded in the zip; larger ones are
    /// referenced. Default <see cref="DefaultEmbedLimitBytes"/> (256 MiB: a model of up to about 32M parameters in
    /// fp32); 0 never embeds; at most <see cref="MaxEmbedLimitBytes"/>.
    /// </summary>
    public long EmbedLimitBytes { get; set; } = DefaultEmbedLimitBytes;

    /// <summary>
    /// The folder the trainer writes the trained policy to, as a Hugging Face folder (what
    /// <see cref="StepScoringTransformer.SavePolicy"/> writes), when the weights are not embedded; the saved scorer
    /// references it. Required in that case, which the trainer checks before training; it must not be the base model
    /// folder. Default null.
    /// </summary>
    public string? PolicyDirectory { get; set; }

    /// <summary>Checks the settings (one-line errors naming the option).</summary>
    internal void Validate()
    {
        if (EmbedLimitBytes < 0 || EmbedLimitBytes > MaxEmbedLimitBytes)
            throw new ArgumentOutOfRangeException(nameof(EmbedLimitBytes), EmbedLimitBytes,
                $"ScorerWeights.EmbedLimitBytes must be between 0 and {MaxEmbedLimitBytes} (1 GiB); larger weights are referenced by path.");
    }

    /// <summary>
    /// The folder the trained policy goes to, or null when policy and reference (<paramref name="weightBytes"/> together)
    /// are embedded. Throws, before any training, when they cannot be: no <see cref="PolicyDirectory"/>, no base model
    /// folder to reference, or the policy folder would overwrite the base model.
    /// </summary>
    internal string? PolicyFolderFor(long weightBytes, string? baseModelPath)
    {
        Validate();
        if (weightBytes <= EmbedLimitBytes) return null;
        string size = $"{Size(weightBytes)} for policy and reference exceed ScorerWeights.EmbedLimitBytes ({Size(EmbedLimitBytes)})";
        if (PolicyDirectory is null)
            throw new InvalidOperationException(
                $"The step scorer's weights ({size}): set ScorerWeights.PolicyDirectory to a folder for the trained policy, which the saved scorer will reference by path and SHA-256 along with the base model folder.");
        if (baseModelPath is null)
            throw new InvalidOperationException(
                $"The step scorer's weights ({size}) must be referenced by path, but an in-memory base model has no folder to reference: start from a model folder (BaseModelPath).");
        var policy = Path.GetFullPath(PolicyDirectory);
        if (SameFolder(policy, baseModelPath))
            throw new InvalidOperationException(
                $"ScorerWeights.PolicyDirectory '{policy}' is the base model folder, which the scorer keeps as its reference model: choose another folder.");
        return policy;
    }

    internal static bool SameFolder(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)),
            OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    private static string Size(long bytes) => bytes >= 1L << 30
        ? (bytes / (double)(1L << 30)).ToString("0.##", CultureInfo.InvariantCulture) + " GiB"
        : (bytes / (double)(1L << 20)).ToString("0.##", CultureInfo.InvariantCulture) + " MiB";
}
