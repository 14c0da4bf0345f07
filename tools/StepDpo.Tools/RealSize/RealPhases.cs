using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools.RealSize;

/// <summary>
/// The phases of <c>bench --sections real</c>, each meant to run alone in a fresh process (its peak RSS is then its
/// own): load a folder; decode with the KV cache; Step-DPO training steps (LoRA or full fine-tuning with gradient
/// checkpointing) and saving the scorer; scoring a solution with a saved scorer. Each returns its figures.
/// </summary>
internal static class RealPhases
{
    public static Dictionary<string, object> Load(string folder)
    {
        var clock = Stopwatch.StartNew();
        var (model, _) = ModelFolder.Load(folder);
        using (model)
            return new() { ["load_s"] = clock.Elapsed.TotalSeconds, ["params"] = model.Config.ParameterCount, ["dtype"] = model.DType.ToString() };
    }

    /// <summary>Decoding tokens/s (prefill excluded) at batch 1 and 32, greedy and sampled (T 0.8, top-p 0.95).</summary>
    public static Dictionary<string, object> Decode(string folder, int newTokens)
    {
        var (model, tok) = ModelFolder.Load(folder);
        using (model)
        {
            var gen = new TextGenerator(model, ids => tok.Decode(ids));
            var prompt = tok.Encode(PromptTemplate.Qwen2Boxed.Build("Mia has 12 books. She buys 6 boxes of 9 books. How many books does she have now?", "Let's think step by step.\nStep 1:"));
            double Rate(int batch, double temperature)
            {
                var prompts = Enumerable.Repeat(prompt, batch).ToList();
                long first = 0, last = 0; int emitted = 0;
                gen.Generate(prompts, new GenerationOptions
                {
                    MaxNewTokens = 1 + newTokens, Temperature = temperature, TopP = temperature > 0 ? 0.95 : 1, Seed = 1,
                    OnToken = (row, _) =>
                    {
                        if (row != 0) return;
                        last = Stopwatch.GetTimestamp();
                        if (emitted++ == 0) first = last;
                    },
                });
                return batch * (emitted - 1) / Stopwatch.GetElapsedTime(first, last).TotalSeconds;
            }
            Rate(1, 0); // warm-up
            return new()
            {
                ["prompt_tokens"] = prompt.Length, ["new_tokens"] = newTokens,
                ["decode_tokens_per_s_b1"] = Rate(1, 0), ["decode_tokens_per_s_b1_sampled"] = Rate(1, 0.8),
                ["decode_tokens_per_s_b32"] = Rate(32, 0), ["decode_tokens_per_s_b32_sampled"] = Rate(32, 0.8),
            };
        }
    }

    private sealed class PairRow
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
    }

    /// <summary>Math-Step-DPO-like pairs: a word problem, a few correct steps, then a right and a wrong next step.</summary>
    private static PairRow[] Pairs(int count, int prefixSteps)
    {
        var rnd = new Random(7);
        return Enumerable.Range(0, count).Select(i =>
        {
            int a = rnd.Next(10, 90), b = rnd.Next(2, 9), c = rnd.Next(5, 50);
            var steps = Enumerable.Range(1, prefixSteps).Select(k => $"Step {k}: After round {k}, the total is {a} + {k * b} = {a + k * b} items, since each round adds {b} items to the pile.");
            int total = a + prefixSteps * b;
            return new PairRow
            {
                prompt = $"A shop starts with {a} items and gets {b} more items every round for {prefixSteps} rounds, then sells {c} items. How many items are left? (problem {i})",
                initial_reason_steps = "Let's think step by step.\n" + string.Join("\n", steps) + $"\nStep {prefixSteps + 1}:",
                chosen = $" After selling {c} items, {total} - {c} = {total - c} items are left.",
                rejected = $" After selling {c} items, {total} - {c} = {total - c + 10} items are left.",
            };
        }).ToArray();
    }

    /// <summary>
    /// Step-DPO optimizer steps on the folder (qwen2-boxed template, reference log-probs cached, prefix sharing), then the
    /// scorer saved to <paramref name="scorerZip"/>. MFU counts per input token forward 2N + backward-through-activations
    /// 2N over the decoder's matrices (N = non-embedding weights), plus 4·V·H per labelled token for the LM head (it runs
    /// on labelled positions only); attention's own FLOPs are left out. Weight gradients (full fine-tuning's extra 2N) are
    /// not counted. The roof is the fastest of the step's own projection shapes in its dtype, measured in this process just before.
    /// </summary>
    public static Dictionary<string, object> Train(string folder, bool lora, int steps, int batch, int prefixSteps, string? scorerZip, long? embedLimitBytes = null)
    {
        var config = Qwen2Config.Load(Path.Combine(folder, ModelCheckpoint.ConfigFile));
        var tok = ByteLevelBpeTokenizer.FromDirectory(folder);
        var rows = Pairs(steps * batch, prefixSteps);
        var pairs = new PreferencePairBuilder(tok, PromptTemplate.Qwen2Boxed, 1024, 512, appendEos: false)
            .Build(rows.Select(r => new PreferenceRow(r.prompt, r.initial_reason_steps, r.chosen, r.rejected)), new PairBuildReport());
        double inputTokens = pairs.Sum(p => p.Chosen.Length + p.Rejected.Length - p.SharedPrefixLength);
        double labelled = pairs.Sum(p => p.Chosen.Length - p.ChosenResponseStart + p.Rejected.Length - p.RejectedResponseStart);
        long embedding = (long)config.VocabSize * config.HiddenSize;
        long nonEmbedding = config.ParameterCount - embedding * (config.TieWordEmbeddings ? 1 : 2);
        double flopsPerInputToken = 4.0 * nonEmbedding + 4.0 * embedding * (labelled / inputTokens);

        var dtype = config.DType;
        double roof = GemmRoof(dtype, (long)(inputTokens / pairs.Count * batch), config);

        var ml = new MLContext(seed: 1);
        var options = new StepDpoTrainer.Options
        {
            BaseModelPath = folder, Template = PromptTemplate.Qwen2Boxed, UseLora = lora, GradientCheckpointing = !lora,
            Epochs = 1, BatchSize = batch, LogInterval = 1, Seed = 1, MaxLength = 1024, MaxPromptLength = 512,
            // A full fine-tune's scorer (policy + reference) is far above the embed limit: the trained policy is written as
            // a Hugging Face folder next to the zip, which the zip references (as it does the base folder, the reference).
            ScorerWeights = new()
            {
                PolicyDirectory = lora || scorerZip is null ? null : PolicyFolder(scorerZip),
                EmbedLimitBytes = embedLimitBytes ?? ScorerWeightsOptions.DefaultEmbedLimitBytes,
            },
        };
        var trainer = ml.StepDpo().Trainers.StepDpo(options);
        var clock = Stopwatch.StartNew();
        var scorer = trainer.Fit(ml.Data.LoadFromEnumerable(rows));
        double fitSeconds = clock.Elapsed.TotalSeconds;
        double trainPeak = PeakMemory.PeakRssGb();
        var rates = trainer.LastReport!.History.Select(h => h["tokens_per_s"]).ToList();
        var steady = rates.Count > 1 ? rates.Skip(1).ToList() : rates;
        double tokPerS = steady.OrderBy(x => x).ElementAt(steady.Count / 2);
        var r = new Dictionary<string, object>
        {
            ["method"] = lora ? "lora" : "full", ["steps"] = rates.Count, ["batch_pairs"] = batch, ["input_tokens_per_pair"] = inputTokens / pairs.Count,
            ["labelled_tokens_per_pair"] = labelled / pairs.Count, ["fit_s"] = fitSeconds, ["tokens_per_s_per_step"] = rates, ["tokens_per_s"] = tokPerS,
            ["flops_per_input_token"] = flopsPerInputToken, ["gemm_gflops"] = roof, ["mfu"] = tokPerS * flopsPerInputToken / (roof * 1e9),
            ["flops_count"] = "per input token 4*N_nonembedding (forward 2N + backward through activations 2N) + 4*V*H*(labelled/input tokens) for the LM head; attention and weight gradients not counted",
            ["train_peak_rss_gb"] = trainPeak,
        };
        if (scorerZip is not null)
        {
            clock.Restart();
            ml.Model.Save(scorer, null, scorerZip);
            r["save_s"] = clock.Elapsed.TotalSeconds;
            r["zip_mb"] = new FileInfo(scorerZip).Length / 1e6;
            if (!lora && Directory.Exists(PolicyFolder(scorerZip)))
                r["policy_folder_gb"] = new DirectoryInfo(PolicyFolder(scorerZip)).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) / 1e9;
        }
        return r;
    }

    /// <summary>Where a full fine-tune's scorer <paramref name="scorerZip"/> has its trained policy: "&lt;zip name&gt;-policy" beside it.</summary>
    internal static string PolicyFolder(string scorerZip) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(scorerZip))!, Path.GetFileNameWithoutExtension(scorerZip) + "-policy");

    /// <summary>Loads a saved scorer in this (fresh) process and scores one solution: load, first-row and next-row seconds.</summary>
    public static Dictionary<string, object> Score(string scorerZip)
    {
        var ml = new MLContext(seed: 1);
        var clock = Stopwatch.StartNew();
        var model = ml.Model.Load(scorerZip, out _);
        double load = clock.Elapsed.TotalSeconds;
        var engine = ml.Model.CreatePredictionEngine<ScoreRow, ScoreResult>(model);
        var row = new ScoreRow
        {
            prompt = "A shop starts with 40 items and gets 5 more items every round for 3 rounds, then sells 12 items. How many items are left?",
            solution = "Let's think step by step.\nStep 1: 40 + 5 = 45.\nStep 2: 45 + 5 = 50.\nStep 3: 50 + 5 = 55.\nStep 4: 55 - 12 = 43.\nThe answer is 43.",
        };
        clock.Restart();
        var first = engine.Predict(row);
        double firstRow = clock.Elapsed.TotalSeconds;
        clock.Restart();
        engine.Predict(row);
        return new() { ["load_s"] = load, ["first_row_s"] = firstRow, ["next_row_s"] = clock.Elapsed.TotalSeconds, ["steps_scored"] = first.StepRewards.Length };
    }

    private sealed class ScoreRow
    {
        public string prompt { get; set; } = "";
        public string solution { get; set; } = "";
    }

    private sealed class ScoreResult
    {
        public float[] StepRewards { get; set; } = Array.Empty<float>();
    }

    /// <summary>
    /// The GEMM roof of a step of <paramref name="rows"/> tokens: the fastest GFLOP/s of x[rows, in]·W[out, in]ᵀ in
    /// <paramref name="dtype"/> over the decoder's projection shapes (hidden→intermediate, intermediate→hidden,
    /// hidden→hidden, hidden→kv), best of 3 calls each, the whole probe twice. One shape probed once under-read by up to
    /// 40% in some processes (a 1.5B run "reached" MFU 1.14); the maximum over the step's own shapes is what its matrix
    /// products can reach.
    /// </summary>
    internal static double GemmRoof(ScalarType dtype, long rows, Qwen2Config c)
    {
        long h = c.HiddenSize, inter = c.IntermediateSize, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        var shapes = new[] { (h, inter), (inter, h), (h, h), (h, kv) };
        double roof = 0;
        for (int pass = 0; pass < 2; pass++)
            foreach (var (inF, outF) in shapes)
                roof = Math.Max(roof, GemmGflops(dtype, rows, inF, outF));
        return roof;
    }

    /// <summary>GFLOP/s of x[rows, inF]·W[outF, inF]ᵀ in <paramref name="dtype"/> (best of 3 after one warm-up call).</summary>
    private static double GemmGflops(ScalarType dtype, long rows, long inF, long outF)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(rows, inF).to(dtype);
        var w = torch.randn(outF, inF).to(dtype);
        nn.functional.linear(x, w).Dispose();
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            nn.functional.linear(x, w).Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * rows * inF * outF / best / 1e9;
    }
}
