using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace StepDpo.Tools;

/// <summary>
/// How long a ~50 MB step-scorer zip takes to load and to score its first and following rows (issue goal: load ≤ 3 s),
/// for the current carrier of the weights (format-2 bundle, gated key) and the previous one (format-1 zip bundle, a
/// constant key, so every row copies the weights), alternated in one run; each figure is the best of three rounds.
/// The scorer holds a policy and a reference of ~6.7M fp32 parameters each, independent random weights (the worst case
/// for the bundle); a third variant has a policy that is its reference plus fine-tuning-sized changes.
/// </summary>
internal static class ScorerLoadBenchmark
{
    private sealed class Row { public string prompt { get; set; } = ""; public string solution { get; set; } = ""; }
    private sealed class Scores { public float[] StepRewards { get; set; } = Array.Empty<float>(); }

    private sealed record Figures(double ZipMb, double Save, double Load, double First, double Next, float[][] Rewards);

    public static void Run(Dictionary<string, object> r)
    {
        // One torch thread: on a shared machine OpenMP threads that wait for each other make the per-row times
        // swing by seconds, hiding what this section measures (the carrier, not the forward pass).
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        try { RunOneThread(r); }
        finally { torch.set_num_threads(threads); }
        r["scorer_torch_threads"] = 1;
    }

    private static void RunOneThread(Dictionary<string, object> r)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 384, layers: 3, heads: 6, kvHeads: 2, intermediate: 1536) with { TorchDtype = "float32" };
        var policy = Qwen2ForCausalLM.CreateRandom(config, torch.ScalarType.Float32, seed: 1);
        var reference = Qwen2ForCausalLM.CreateRandom(config, torch.ScalarType.Float32, seed: 2);
        var scorer = new StepScorer(policy, reference, tok, PromptTemplate.Alpaca, beta: 0.4, threshold: 0);
        var rows = Enumerable.Range(0, 11).Select(i => new Row { prompt = $"Mia has {i} pens.", solution = $"Let's think step by step.\nStep 1: {i}+1={i + 1}.\nThe answer is {i + 1}." }).ToArray();

        // A fine-tuned-like scorer: the policy is its reference plus changes of the size Step-DPO's learning rate makes
        // (~1e-4 on weights of std 0.02); the bundle stores the reference as its XOR with the policy.
        var tuned = Qwen2ForCausalLM.CreateRandom(config, torch.ScalarType.Float32, seed: 2);
        using (torch.no_grad())
        {
            torch.manual_seed(3);
            foreach (var p in tuned.parameters()) p.add_(torch.randn_like(p) * 1e-4);
        }
        var tunedScorer = new StepScorer(tuned, reference, tok, PromptTemplate.Alpaca, beta: 0.4, threshold: 0);

        List<Figures> before = new(), now = new(), fineTuned = new();
        for (int round = 0; round < 3; round++)
        {
            before.Add(Measure(scorer, rows, legacy: true));
            now.Add(Measure(scorer, rows, legacy: false));
            fineTuned.Add(Measure(tunedScorer, rows, legacy: false));
        }

        for (int i = 0; i < rows.Length; i++)
            if (!now[0].Rewards[i].SequenceEqual(before[0].Rewards[i])) throw new InvalidOperationException($"row {i}: the two carriers disagree");
        void Put(string prefix, List<Figures> f)
        {
            r[prefix + "zip_mb"] = f[0].ZipMb;
            r[prefix + "save_s"] = f.Min(x => x.Save);
            r[prefix + "load_s"] = f.Min(x => x.Load);
            r[prefix + "first_row_s"] = f.Min(x => x.First);
            r[prefix + "next_row_s"] = f.Min(x => x.Next);
            r[prefix + "load_s_rounds"] = f.Select(x => x.Load).ToArray();
        }
        Put("scorer_", now);
        Put("scorer_legacy_", before);
        Put("scorer_finetuned_", fineTuned);
        foreach (var (name, f) in new[] { ("now", now), ("before (format-1 bundle, ungated key)", before), ("now, fine-tuned-like policy", fineTuned) })
            Console.WriteLine($"step scorer, {name}: zip {f[0].ZipMb:F1} MB, save {f.Min(x => x.Save):F2} s, Model.Load {f.Min(x => x.Load):F2} s " +
                              $"(rounds {string.Join(" / ", f.Select(x => x.Load.ToString("F2")))}), first row {f.Min(x => x.First):F2} s, next rows {f.Min(x => x.Next) * 1000:F1} ms each");
    }

    private static Figures Measure(StepScorer scorer, Row[] rows, bool legacy)
    {
        var ml = new MLContext(1);
        var chain = StepScoringTransformer.BuildChain(ml, scorer, null, new StepScoringColumns(), out var sha, legacyCarrier: legacy);
        var data = ml.Data.LoadFromEnumerable(rows);
        var transformer = chain.Fit(data);
        string zip = Path.Combine(Path.GetTempPath(), $"stepdpo-scorer-bench-{Guid.NewGuid():N}.zip");
        try
        {
            var sw = Stopwatch.StartNew();
            ml.Model.Save(transformer, data.Schema, zip);
            double save = sw.Elapsed.TotalSeconds;
            long bytes = new FileInfo(zip).Length;

            // A new MLContext; the in-process cache is keyed by content, so clear it, and the unpacked-bundle cache
            // folder, to measure a cold load.
            StepScoringMapping.ClearCache();
            var unpacked = Path.Combine(Path.GetTempPath(), "stepdpo-scorers", sha);
            if (Directory.Exists(unpacked)) Directory.Delete(unpacked, true);
            GC.Collect();
            var fresh = new MLContext(2);
            fresh.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
            sw.Restart();
            var loaded = fresh.Model.Load(zip, out _);
            double load = sw.Elapsed.TotalSeconds;
            var engine = fresh.Model.CreatePredictionEngine<Row, Scores>(loaded);
            var rewards = new float[rows.Length][];
            sw.Restart();
            rewards[0] = engine.Predict(rows[0]).StepRewards;
            double first = sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int i = 1; i < rows.Length; i++) rewards[i] = engine.Predict(rows[i]).StepRewards;
            double next = sw.Elapsed.TotalSeconds / (rows.Length - 1);
            if (Directory.Exists(unpacked)) Directory.Delete(unpacked, true);
            return new Figures(bytes / 1e6, save, load, first, next, rewards);
        }
        finally { File.Delete(zip); }
    }
}
