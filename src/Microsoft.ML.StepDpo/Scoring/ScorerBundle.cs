using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>What a saved step scorer records besides its weights.</summary>
internal sealed class ScorerManifest
{
    /// <summary>1: weights embedded, or a LoRA base referenced by one folder hash; 2: folders referenced file by file
    /// (<see cref="BaseModel"/>, <see cref="Policy"/>, <see cref="Reference"/>), which readers of format 1 refuse clearly.</summary>
    public int FormatVersion { get; set; } = 1;
    public double Beta { get; set; }
    public double Threshold { get; set; }
    public string TemplateName { get; set; } = "";
    public string Template { get; set; } = "";
    public string Separator { get; set; } = "";
    /// <summary>True: policy = base + LoRA adapters (in the bundle), reference model πref = base with adapters off.</summary>
    public bool Lora { get; set; }
    /// <summary>Format 1, LoRA: the base model folder, referenced by path and checked by one SHA-256 over its files; null
    /// when the base was an in-memory model, which then travels in the bundle's base/ folder.</summary>
    public string? BaseModelPath { get; set; }
    public string? BaseModelSha256 { get; set; }
    /// <summary>Format 2, LoRA: the base model folder, referenced by path and checked file by file.</summary>
    public ReferencedFolder? BaseModel { get; set; }
    /// <summary>Format 2, full fine-tuning with the weights referenced: the trained policy's folder.</summary>
    public ReferencedFolder? Policy { get; set; }
    /// <summary>Format 2, full fine-tuning with the weights referenced: the reference model πref's folder (the base model).</summary>
    public ReferencedFolder? Reference { get; set; }
}

/// <summary>
/// A step scorer as one byte array (a zip of Hugging Face folders plus a manifest), so that it can travel inside an
/// ML.NET model zip. Full fine-tuning: policy/ and reference/ (πref) folders when they are small
/// (<see cref="ScorerWeightsOptions.EmbedLimitBytes"/>), else only the tokenizer, with the policy and reference folders
/// referenced by path and SHA-256 per file (<see cref="ReferencedFolder"/>). LoRA: adapters/ (PEFT layout) and the base
/// model referenced the same way, so a multi-GB base is not copied — or, when the trainer was given an in-memory base
/// model (no folder to point to), the base itself in base/. A referenced model's weights never pass through the bundle:
/// they load from their folder, tensor by tensor.
/// </summary>
internal static class ScorerBundle
{
    private const string ManifestEntry = "scorer.json";
    private const string EmbeddedBaseFolder = "base";
    private const string TokenizerFolder = "tokenizer";
    private const string CacheName = "stepdpo-scorers";

    /// <summary>
    /// The bundle of <paramref name="scorer"/>. <paramref name="baseModelPath"/>: the folder training started from (a LoRA
    /// scorer's base; with <paramref name="policyFolder"/>, the full fine-tune's reference model πref).
    /// <paramref name="policyFolder"/>: the folder the trained policy was written to when the weights are referenced
    /// rather than embedded (full fine-tuning only). <paramref name="legacyFormat"/>: format 1 (benchmarks).
    /// </summary>
    public static byte[] Create(StepScorer scorer, string? baseModelPath, bool legacyFormat = false, string? policyFolder = null) => BundleArchive.Create(staging =>
    {
        bool lora = scorer.Reference is null;
        var manifest = new ScorerManifest
        {
            Beta = scorer.Beta, Threshold = scorer.Threshold, Lora = lora,
            TemplateName = scorer.Template.Name, Template = scorer.Template.Template, Separator = scorer.Template.Separator,
        };
        if (lora)
        {
            if (policyFolder is not null) throw new ArgumentException("A LoRA scorer's policy is its adapters: it has no policy folder.", nameof(policyFolder));
            if (baseModelPath is null)
            {
                // An in-memory base has no folder to point to: it travels in the bundle (adapter weights excluded).
                SaveFolder(scorer.Policy, scorer.Tokenizer, Path.Combine(staging, EmbeddedBaseFolder));
            }
            else
            {
                manifest.FormatVersion = 2;
                manifest.BaseModel = ReferencedFolder.Of(baseModelPath);
            }
            LoraAdapters.Save(scorer.Policy, Path.Combine(staging, "adapters"), manifest.BaseModel?.Path);
            scorer.Tokenizer.Save(Path.Combine(staging, "adapters"));
        }
        else if (policyFolder is not null)
        {
            if (baseModelPath is null) throw new ArgumentException("A referenced policy needs the reference model's folder.", nameof(baseModelPath));
            manifest.FormatVersion = 2;
            manifest.Policy = ReferencedFolder.Of(policyFolder);
            manifest.Reference = ReferencedFolder.Of(baseModelPath);
            scorer.Tokenizer.Save(Path.Combine(staging, TokenizerFolder));
        }
        else
        {
            SaveFolder(scorer.Policy, scorer.Tokenizer, Path.Combine(staging, "policy"));
            SaveFolder(scorer.Reference!, scorer.Tokenizer, Path.Combine(staging, "reference"));
            if (!legacyFormat) XorReferenceWithPolicy(staging);
        }
        File.WriteAllText(Path.Combine(staging, ManifestEntry), JsonSerializer.Serialize(manifest));
    }, legacyFormat);

    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

    /// <summary>Loads the scorer of a bundle whose hash <paramref name="sha"/> has been checked, onto <paramref name="device"/> (default CPU).</summary>
    public static StepScorer Load(ReadOnlySpan<byte> bundle, string sha, TorchSharp.torch.Device? device = null)
    {
        // The unpacked folder is in use (not evicted from the cache) until the models are read from it.
        using var inUse = UnpackedCacheLimit.Use(BundleArchive.CacheDirectory(CacheName), sha);
        string dir = BundleArchive.Unpack(bundle, sha, CacheName, ManifestEntry, "step scorer", RestoreReference, ExpectRestoredReference);
        var manifest = JsonSerializer.Deserialize<ScorerManifest>(File.ReadAllText(Path.Combine(dir, ManifestEntry)))
                       ?? throw new InvalidDataException("The step scorer's manifest is unreadable.");
        if (manifest.FormatVersion is not (1 or 2))
            throw new InvalidDataException($"This step scorer was saved in format {manifest.FormatVersion}; this version of Microsoft.ML.StepDpo reads formats 1 and 2.");
        var template = new PromptTemplate(manifest.TemplateName, manifest.Template, manifest.Separator);
        if (manifest.Lora)
        {
            var model = ModelCheckpoint.Load(LoraBaseFolder(manifest, dir), device: device);
            LoraAdapters.Load(model, Path.Combine(dir, "adapters"));
            var tok = ByteLevelBpeTokenizer.FromDirectory(Path.Combine(dir, "adapters"));
            return new StepScorer(model, null, tok, template, manifest.Beta, manifest.Threshold);
        }
        string policyDir, referenceDir, tokenizerDir;
        if (manifest.Policy is not null || manifest.Reference is not null)
        {
            var policyFolder = manifest.Policy ?? throw new InvalidDataException("The step scorer stored in this model references a reference model but no policy: the model file is corrupted.");
            var referenceFolder = manifest.Reference ?? throw new InvalidDataException("The step scorer stored in this model references a policy but no reference model: the model file is corrupted.");
            policyFolder.Check("policy folder");
            referenceFolder.Check("reference model folder");
            (policyDir, referenceDir, tokenizerDir) = (policyFolder.Path, referenceFolder.Path, Path.Combine(dir, TokenizerFolder));
        }
        else
            (policyDir, referenceDir, tokenizerDir) = (Path.Combine(dir, "policy"), Path.Combine(dir, "reference"), Path.Combine(dir, "policy"));
        var tokenizer = ByteLevelBpeTokenizer.FromDirectory(tokenizerDir);
        var policy = ModelCheckpoint.Load(policyDir, device: device);
        try
        {
            var reference = ModelCheckpoint.Load(referenceDir, device: device);
            return new StepScorer(policy, reference, tokenizer, template, manifest.Beta, manifest.Threshold);
        }
        catch
        {
            policy.Dispose();
            throw;
        }
    }

    /// <summary>The base model folder of a LoRA scorer: the one embedded in the bundle, or the referenced one once its
    /// presence and hash are checked.</summary>
    private static string LoraBaseFolder(ScorerManifest manifest, string dir)
    {
        if (manifest.BaseModel is { } referenced)
        {
            referenced.Check("base model folder");
            return referenced.Path;
        }
        if (manifest.BaseModelPath is null)
        {
            var embedded = Path.Combine(dir, EmbeddedBaseFolder);
            if (!File.Exists(Path.Combine(embedded, ModelCheckpoint.ConfigFile)))
                throw new InvalidDataException("The LoRA step scorer stored in this model has neither a base model path nor an embedded base model: the model file is corrupted.");
            return embedded;
        }
        var basePath = manifest.BaseModelPath;
        if (!Directory.Exists(basePath))
            throw new FileNotFoundException($"The step scorer's base model folder '{basePath}' is missing: a LoRA scorer references its base model by path; put the folder back at that path, or retrain.", basePath);
        var actual = FileHashCache.OfFolder(basePath);
        if (actual != manifest.BaseModelSha256)
            throw new InvalidDataException($"The step scorer's base model folder '{basePath}' has changed since the step scorer was trained (SHA-256 {actual}, expected {manifest.BaseModelSha256}).");
        return basePath;
    }

    // A fine-tuned policy is its reference model πref plus small changes: most sign, exponent and high mantissa bits are equal,
    // so πref's weight files are stored XOR the policy's (same length required; lossless whatever the
    // contents) when that leaves many zero bytes, which the byte planes of the format-2 bundle then compress to little.
    private const string XorSuffix = ".xor-policy";

    private static void XorReferenceWithPolicy(string staging)
    {
        foreach (var referenceFile in Directory.EnumerateFiles(Path.Combine(staging, "reference"), "*.safetensors"))
        {
            var policyFile = Path.Combine(staging, "policy", Path.GetFileName(referenceFile));
            if (!File.Exists(policyFile) || new FileInfo(policyFile).Length != new FileInfo(referenceFile).Length) continue;
            var reference = File.ReadAllBytes(referenceFile);
            Xor(reference, File.ReadAllBytes(policyFile));
            // Unrelated weights gain nothing from it (their XOR is as random as they are): keep those as they are.
            if (reference.AsSpan().Count((byte)0) < reference.Length / 4) continue;
            File.WriteAllBytes(referenceFile + XorSuffix, reference);
            File.Delete(referenceFile);
        }
    }

    private static void RestoreReference(string dir)
    {
        var referenceDir = Path.Combine(dir, "reference");
        if (!Directory.Exists(referenceDir)) return;
        foreach (var stored in Directory.EnumerateFiles(referenceDir, "*" + XorSuffix))
        {
            var name = Path.GetFileName(stored)[..^XorSuffix.Length];
            var policy = File.ReadAllBytes(Path.Combine(dir, "policy", name));
            var reference = File.ReadAllBytes(stored);
            if (policy.Length != reference.Length)
                throw new InvalidDataException($"The step scorer stored in this model is corrupted (reference/{name} does not match the policy's size).");
            Xor(reference, policy);
            File.WriteAllBytes(Path.Combine(referenceDir, name), reference);
            File.Delete(stored);
        }
    }

    /// <summary>What <see cref="RestoreReference"/> makes of the bundle's entries: reference/x instead of reference/x.xor-policy.</summary>
    private static void ExpectRestoredReference(IDictionary<string, string> expected, Func<string, byte[]> readEntry)
    {
        foreach (var key in expected.Keys.Where(k => k.StartsWith("reference/", StringComparison.Ordinal) && k.EndsWith(XorSuffix, StringComparison.Ordinal)
                     && k.IndexOf('/', "reference/".Length) < 0).ToList())
        {
            var name = key["reference/".Length..^XorSuffix.Length];
            var reference = readEntry(key);
            var policy = readEntry("policy/" + name);
            if (policy.Length != reference.Length) continue; // RestoreReference refuses it when it unpacks
            Xor(reference, policy);
            expected.Remove(key);
            expected["reference/" + name] = Sha256(reference);
        }
    }

    private static void Xor(Span<byte> target, ReadOnlySpan<byte> other)
    {
        var t = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(target);
        var o = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(other);
        for (int i = 0; i < t.Length; i++) t[i] ^= o[i];
        for (int i = t.Length * sizeof(ulong); i < target.Length; i++) target[i] ^= other[i];
    }

    private static void SaveFolder(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, string dir)
    {
        ModelCheckpoint.Save(model, dir);
        tokenizer.Save(dir);
    }
}
