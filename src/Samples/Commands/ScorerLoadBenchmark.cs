using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace StepDpo.Samples;

/// <summary>
/// How long a ~50 MB step-scorer zip takes to load and to score its first and following rows (issue goal: load ≤ 3 s).
/// The scorer holds a policy and a reference of ~6M fp32 parameters each.
/// </summary>
internal static class ScorerLoadBenchmark
{
    private sealed class Row { public string prompt { get; set; } = ""; public string solution { get; set; } = ""; }
    private sealed class Scores { public float[] StepRewards { get; set; } = Array.Empty<float>(); }

    public static void Run(Dictionary<string, object> r)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 384, layers: 3, heads: 6, kvHeads: 2, intermediate: 1536) with { TorchDtype = "float32" };
        var policy = Qwen2ForCausalLM.CreateRandom(config, torch.ScalarType.Float32, seed: 1);
        var reference = Qwen2ForCausalLM.CreateRandom(config, torch.ScalarType.Float32, seed: 2);
        var scorer = new StepScorer(policy, reference, tok, PromptTemplate.Alpaca, beta: 0.4, threshold: 0);
        var ml = new MLContext(1);
        var chain = StepScoringTransformer.BuildChain(ml, scorer, null, new StepScoringColumns(), out _);
        var rows = Enumerable.Range(0, 6).Select(i => new Row { prompt = $"Mia has {i} pens.", solution = $"Let's think step by step.\nStep 1: {i}+1={i + 1}.\nThe answer is {i + 1}." }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var transformer = chain.Fit(data);
        string zip = Path.Combine(Path.GetTempPath(), $"stepdpo-scorer-bench-{Guid.NewGuid():N}.zip");
        try
        {
            var sw = Stopwatch.StartNew();
            ml.Model.Save(transformer, data.Schema, zip);
            double save = sw.Elapsed.TotalSeconds;
            long bytes = new FileInfo(zip).Length;

            // A new MLContext; the in-process cache is keyed by content, so clear it to measure a cold load.
            StepScoringMapping.ClearCache();
            var fresh = new MLContext(2);
            fresh.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
            sw.Restart();
            var loaded = fresh.Model.Load(zip, out _);
            double load = sw.Elapsed.TotalSeconds;
            var engine = fresh.Model.CreatePredictionEngine<Row, Scores>(loaded);
            sw.Restart();
            engine.Predict(rows[0]);
            double first = sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int i = 1; i < rows.Length; i++) engine.Predict(rows[i]);
            double next = sw.Elapsed.TotalSeconds / (rows.Length - 1);
            r["scorer_zip_mb"] = bytes / 1e6;
            r["scorer_save_s"] = save;
            r["scorer_load_s"] = load;
            r["scorer_first_row_s"] = first;
            r["scorer_next_row_s"] = next;
            Console.WriteLine($"step scorer zip {bytes / 1e6:F1} MB: save {save:F2} s, Model.Load {load:F2} s, first row {first:F2} s (unpacks the weights), next rows {next * 1000:F0} ms each");
        }
        finally { File.Delete(zip); }
    }
}
