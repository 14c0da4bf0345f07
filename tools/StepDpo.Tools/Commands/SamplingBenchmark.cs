using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Text;
using StepDpo.Tools.Sampling;
using StepDpo.Tools.Study;
using TorchSharp;

namespace StepDpo.Tools;

/// <summary>
/// Sampling the demo's committed SFT model, old path against new in one run: (1) samples/s at batch 1, 64 and 256 on
/// the demo's error-collection prompts (6 samples per problem, temperature 0.8, top-p 0.95, at most 160 new tokens):
/// the old path is one <see cref="TextGenerator"/> batch run to its longest row on torch's default threads, as the old
/// source ran it (and, for reference, on one thread); the new path is <see cref="ContinuousBatchGenerator"/> with as many rows, on one thread, given the
/// same rows at once and given four times as many (rows join as others finish). (2) The demo's stage b end to end
/// (the step-preference pipeline on 240 training problems, 6 samples, rollouts and rectifications each): the demo's
/// configuration before (the old source, 64-row batches, 8 problems at once, one torch thread: the demo's --threads
/// default) against the new one (continuous batching through the fused decoder, 128 rows, 64 problems at once, as the
/// demo runs it), the new one run
/// before and after the old one. Both use this revision's pipeline (problems committed in order, a problem's wrong
/// solutions localized concurrently with each prefix's rollouts drawn once), which gives the old source larger
/// batches than it had: the old figure is, if anything, faster than the old code was.
/// Every figure comes with the load average around it.
/// </summary>
internal static class SamplingBenchmark
{
    /// <summary>The demo's stage-b settings.</summary>
    private static readonly SamplingSettings s_sampling = new() { Temperature = 0.8, TopP = 0.95, MaxNewTokens = 160, Seed = 1 };

    internal const int NewRows = 128, NewConcurrency = 64, OldRows = 64, OldConcurrency = 8;

    private static string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";

    public static void Run(Dictionary<string, object> r, bool quick)
    {
        var (model, tokenizer) = ModelFolder.Load(PreferenceStages.CommittedSftDirectory);
        using var _ = model;
        int defaultThreads = torch.get_num_threads();
        r["sampling_model"] = $"committed demo SFT model ({model.Config.HiddenSize} hidden, {model.Config.NumHiddenLayers} layers, {model.DType})";
        r["sampling_default_threads"] = defaultThreads;
        try
        {
            Batches(r, model, tokenizer, quick, defaultThreads);
            StageB(r, model, tokenizer, quick ? 48 : 240);
        }
        finally
        {
            torch.set_num_threads(defaultThreads);
        }
    }

    private static void Batches(Dictionary<string, object> r, Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, bool quick, int defaultThreads)
    {
        var problems = PreferenceStages.SourceProblems(ArithmeticSftRecipe.DemoTask, 4 * 256 / 6 + 1, seed: 1);
        string start = SolutionText.PrefixBefore(Array.Empty<string>(), 1);
        var prompts = problems.Select(p => tokenizer.Encode(PromptTemplate.Plain.Build(p.Question, start))).ToList();
        // Six samples per problem, as stage b draws them: row i is sample i % 6 of problem i / 6.
        List<GenerationRow> Rows(int count) => Enumerable.Range(0, count)
            .Select(i => new GenerationRow(prompts[i / 6], s_sampling.Temperature, s_sampling.TopP, s_sampling.MaxNewTokens, Array.Empty<string>(), 1 + i / 6, i % 6))
            .ToList();
        var eos = new[] { tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        var plain = new TextGenerator(model, ids => tokenizer.Decode(ids));

        (double Seconds, long Tokens) Old(int batch, int threads)
        {
            torch.set_num_threads(threads);
            var rows = Rows(batch);
            var sw = Stopwatch.StartNew();
            var results = plain.Generate(rows.Select(x => x.Prompt).ToList(), new GenerationOptions
            {
                MaxNewTokens = s_sampling.MaxNewTokens, Temperature = s_sampling.Temperature, TopP = s_sampling.TopP, EosIds = eos, Seed = 1,
            });
            return (sw.Elapsed.TotalSeconds, results.Sum(x => (long)x.Tokens.Length));
        }

        (double Seconds, long Tokens) New(int batch, int total)
        {
            torch.set_num_threads(1);
            var rows = Rows(total);
            using var generator = new ContinuousBatchGenerator(model, ids => tokenizer.Decode(ids), eos, batch);
            long tokens = 0;
            int next = 0;
            var sw = Stopwatch.StartNew();
            while (next < rows.Count || generator.Live > 0)
            {
                if (generator.FreeRows > 0 && next < rows.Count)
                {
                    int take = Math.Min(generator.FreeRows, rows.Count - next);
                    tokens += generator.Admit(rows.GetRange(next, take)).Sum(x => (long)x.Result.Tokens.Length);
                    next += take;
                }
                tokens += generator.Step().Sum(x => (long)x.Result.Tokens.Length);
            }
            return (sw.Elapsed.TotalSeconds, tokens);
        }

        Old(4, defaultThreads); New(4, 4);   // warm-up
        int reps = quick ? 1 : 3;
        foreach (int batch in new[] { 1, 64, 256 })
        {
            var old = new List<double>(); var oldOne = new List<double>(); var oneBatch = new List<double>(); var stream = new List<double>();
            var loads = new List<string>();
            long oldTokens = 0, newTokens = 0;
            for (int i = 0; i < reps; i++)
            {
                // Interleaved, so that a change of the machine's load falls on all three alike.
                loads.Add(Load());
                var o = Old(batch, defaultThreads); old.Add(batch / o.Seconds); oldTokens = o.Tokens;
                oldOne.Add(batch / Old(batch, 1).Seconds);
                var n = New(batch, batch); oneBatch.Add(batch / n.Seconds); newTokens = n.Tokens;
                var s = New(batch, 4 * batch); stream.Add(4 * batch / s.Seconds);
            }
            loads.Add(Load());
            double mo = Median(old), mo1 = Median(oldOne), mn = Median(oneBatch), ms = Median(stream);
            r[$"sampling_b{batch}_old_samples_per_s"] = mo;
            r[$"sampling_b{batch}_old_one_thread_samples_per_s"] = mo1;
            r[$"sampling_b{batch}_new_samples_per_s"] = mn;
            r[$"sampling_b{batch}_new_stream_samples_per_s"] = ms;
            r[$"sampling_b{batch}_tokens_old_new"] = new[] { oldTokens, newTokens };
            r[$"sampling_b{batch}_load"] = string.Join(" ", loads);
            Console.WriteLine($"sampling batch {batch}: old {mo:F1} samples/s (on one thread {mo1:F1}), new {mn:F1} ({mn / mo:F1}x), new with rows joining {ms:F1} ({ms / mo:F1}x); " +
                              $"median of {reps}; new tokens old/new {oldTokens}/{newTokens}; load {string.Join(" ", loads)}");
        }
    }

    /// <summary>Only the new path's stage b, twice (for profiling and quick comparisons; no old-path baseline).</summary>
    public static void RunStageBOnly(Dictionary<string, object> r, bool quick)
    {
        var (model, tokenizer) = ModelFolder.Load(PreferenceStages.CommittedSftDirectory);
        using var _ = model;
        int defaultThreads = torch.get_num_threads();
        try { StageB(r, model, tokenizer, quick ? 48 : 240, withOld: false); }
        finally { torch.set_num_threads(defaultThreads); }
    }

    private sealed record StageRun(double Seconds, StepPreferenceReport Report, byte[] Pairs, string Details, string Load);

    private static void StageB(Dictionary<string, object> r, Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, int count, bool withOld = true)
    {
        var problems = PreferenceStages.SourceProblems(ArithmeticSftRecipe.DemoTask, count, seed: 1);
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(problems.Select(p => new Row { Problem = p.Question, Answer = p.Answer.ToString(CultureInfo.InvariantCulture), Id = p.Id }));

        StageRun RunOnce(bool fresh)
        {
            string dir = Path.Combine(Path.GetTempPath(), $"bench-sampling-{Guid.NewGuid():N}");
            Directory.CreateDirectory(dir);
            try
            {
                torch.set_num_threads(1);   // the demo's default; the generation thread takes the count set when it starts
                using var legacy = fresh ? null : new LegacyCompletionSource(model, tokenizer, PromptTemplate.Plain, OldRows);
                using var current = fresh ? new LocalModelCompletionSource(model, tokenizer, PromptTemplate.Plain, NewRows) : null;
                var options = new StepPreferenceOptions
                {
                    Policy = fresh ? current : legacy, IdColumnName = "Id", SamplesPerProblem = 6, RolloutsPerPrefix = 6, RectificationSamples = 6,
                    Sampling = s_sampling, MaxConcurrency = fresh ? NewConcurrency : OldConcurrency,
                    OutputPath = Path.Combine(dir, "pairs.jsonl"), AnswerPairsPath = Path.Combine(dir, "answers.jsonl"), Dataset = "arithmetic", Seed = 1,
                };
                string before = Load();
                var jitBefore = System.Runtime.JitInfo.GetCompilationTime(); long methodsBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
                var sw = Stopwatch.StartNew();
                var report = ml.StepDpo().BuildStepPreferences(data, options);
                double seconds = sw.Elapsed.TotalSeconds;
                Console.WriteLine($"  jit during the run: {(System.Runtime.JitInfo.GetCompilationTime() - jitBefore).TotalSeconds:F2} s, {System.Runtime.JitInfo.GetCompiledMethodCount() - methodsBefore} methods");
                string details = legacy is not null
                    ? legacy.Stats.ToString()
                    : current!.Generator is { } g
                        ? $"admissions {g.Prefills} ({g.PrefillTokens} prompt tokens run, {g.ReusedTokens} from the prefix pool), steps {g.Steps} ({(double)g.RowSteps / Math.Max(1, g.Steps):F0} rows/step, {g.RowSteps} tokens); " +
                          $"admit {g.AdmitTime.TotalSeconds:F1} s + steps {g.StepTime.TotalSeconds:F1} s (forward {g.ForwardTime.TotalSeconds:F1} s, sampling {g.SampleTime.TotalSeconds:F1} s)"
                        : "";
                return new StageRun(seconds, report, File.ReadAllBytes(options.OutputPath), details, $"{before}->{Load()}");
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }

        var first = RunOnce(fresh: true);
        if (!withOld)
        {
            var again = RunOnce(fresh: true);
            r["stageb_problems"] = count;
            r["stageb_new_seconds"] = new[] { first.Seconds, again.Seconds };
            r["stageb_load"] = new[] { first.Load, again.Load };
            r["stageb_new_pairs"] = first.Report.Pairs;
            r["stageb_new_runs_identical"] = first.Pairs.AsSpan().SequenceEqual(again.Pairs);
            r["stageb_new_details"] = new[] { first.Details, again.Details };
            r["stageb_new_pairs_sha256"] = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(first.Pairs));
            Console.WriteLine($"stage b, {count} problems, new path only: {first.Seconds:F1} s (load {first.Load}) and {again.Seconds:F1} s (load {again.Load}); {first.Report.Pairs} pairs; " +
                              $"sha256 {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(first.Pairs))[..16]}; runs {(first.Pairs.AsSpan().SequenceEqual(again.Pairs) ? "identical" : "DIFFERENT")}; {first.Details} | {again.Details}");
            return;
        }
        var old = RunOnce(fresh: false);
        var second = RunOnce(fresh: true);
        double newSeconds = (first.Seconds + second.Seconds) / 2;
        r["stageb_problems"] = count;
        r["stageb_old_seconds"] = old.Seconds;
        r["stageb_new_seconds"] = new[] { first.Seconds, second.Seconds };
        r["stageb_speedup"] = old.Seconds / newSeconds;
        r["stageb_load"] = new[] { first.Load, old.Load, second.Load };
        r["stageb_old_samples"] = old.Report.Sampled;
        r["stageb_new_samples"] = first.Report.Sampled;
        r["stageb_old_pairs"] = old.Report.Pairs;
        r["stageb_new_pairs"] = first.Report.Pairs;
        r["stageb_new_runs_identical"] = first.Pairs.AsSpan().SequenceEqual(second.Pairs);
        r["stageb_old_details"] = old.Details;
        r["stageb_new_details"] = new[] { first.Details, second.Details };
        Console.WriteLine($"stage b, {count} problems: old {old.Seconds:F1} s (load {old.Load}; {old.Report.Pairs} pairs, {old.Details})");
        Console.WriteLine($"  new {first.Seconds:F1} s (load {first.Load}) and {second.Seconds:F1} s (load {second.Load}); {first.Report.Pairs} pairs; " +
                          $"{old.Seconds / newSeconds:F1}x; the two new runs wrote {(first.Pairs.AsSpan().SequenceEqual(second.Pairs) ? "the same" : "DIFFERENT")} bytes; {first.Details}");
    }

    private static double Median(IReadOnlyList<double> xs)
    {
        var o = xs.OrderBy(v => v).ToArray();
        return o.Length % 2 == 1 ? o[o.Length / 2] : (o[o.Length / 2 - 1] + o[o.Length / 2]) / 2;
    }

    private sealed class Row
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
        public string Id { get; set; } = "";
    }
}
