using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Batched sampling with a preallocated KV cache. Prompts of different lengths share one batch: they are
/// left-padded, padding is masked out of attention, and each row keeps its own rotary positions, so every
/// row gets what it would get alone. One prefill pass, then one token per step for all rows.
/// </summary>
internal sealed class TextGenerator
{
    private readonly Qwen2ForCausalLM model;
    private readonly Func<int[], string>? decode;

    /// <param name="model">The model to sample from.</param>
    /// <param name="decode">Ids to text; needed for stop strings and <see cref="GenerationResult.Text"/>.</param>
    public TextGenerator(Qwen2ForCausalLM model, Func<int[], string>? decode = null)
    {
        this.model = model;
        this.decode = decode;
    }

    public GenerationResult Generate(int[] prompt, GenerationOptions options) => Generate(new[] { prompt }, options)[0];

    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<int[]> prompts, GenerationOptions options)
    {
        options.Validate();
        if (prompts.Count == 0) return Array.Empty<GenerationResult>();
        if (prompts.Any(p => p.Length == 0)) throw new ArgumentException("Every prompt needs at least one token.", nameof(prompts));
        if (options.StopStrings.Count > 0 && decode is null) throw new InvalidOperationException("Stop strings need a decode function.");

        // The model's context bounds every row: a prompt that does not fit is refused (its attention and KV cache
        // would grow with it), and generation stops where the longest prompt reaches the context.
        int context = model.Config.MaxPositionEmbeddings;
        int longest = prompts.Max(p => p.Length);
        if (longest >= context)
            throw new ArgumentException(
                $"A prompt is {longest} tokens; the model's context (max_position_embeddings) is {context}. Shorten the problem or use a model with a longer context.",
                nameof(prompts));
        int B = prompts.Count, P = longest, maxNew = Math.Min(options.MaxNewTokens, context - P);
        var device = model.Device;
        var generated = Enumerable.Range(0, B).Select(_ => new List<int>()).ToArray();
        var results = new GenerationResult?[B];
        if (maxNew == 0)
            return prompts.Select(_ => new GenerationResult(Array.Empty<int>(), decode is null ? null : "", StopReason.MaxTokens, null)).ToList();

        bool wasTraining = model.training;
        model.eval();
        using var noGrad = torch.no_grad();
        using var cache = new KvCache(model.Config, B, P + maxNew, model.DType, device);
        using var rng = new Generator((ulong)options.Seed, device);
        try
        {
            // Left-padded prompt block; pad slots are invalid keys and their queries only see themselves.
            var ids = new long[B, P];
            var positions = new long[B, P];
            var valid = new bool[B, P];
            for (int b = 0; b < B; b++)
            {
                int pad = P - prompts[b].Length;
                for (int j = 0; j < P; j++)
                {
                    valid[b, j] = j >= pad;
                    ids[b, j] = valid[b, j] ? prompts[b][j - pad] : 0;
                    positions[b, j] = Math.Max(0, j - pad);
                }
            }
            using var validKeys = torch.tensor(valid, device: device);

            bool kernelModel = InferenceLinear.AppliesTo(model.DType, device);
            Tensor next;
            using (var prefillScope = kernelModel && B * P <= InferenceLinear.MaxKernelRows ? InferenceLinear.SmallStepScope() : null)
            using (var scope = torch.NewDisposeScope())
            {
                var causal = torch.ones(P, P, dtype: ScalarType.Bool, device: device).tril();
                var mask = (causal.unsqueeze(0) & validKeys.unsqueeze(1)) | torch.eye(P, dtype: ScalarType.Bool, device: device).unsqueeze(0);
                var hidden = model.Hidden(torch.tensor(ids, device: device), torch.tensor(positions, device: device), mask.unsqueeze(1), cache, 0);
                next = Sample(model.Logits(hidden.narrow(1, P - 1, 1)).squeeze(1), options, rng).MoveToOuterDisposeScope();
            }

            // Decoding steps of a few rows: torch single-threaded, the bf16 kernel multi-threaded (see SmallStepScope).
            using var smallSteps = kernelModel && B <= InferenceLinear.MaxKernelRows ? InferenceLinear.SmallStepScope() : null;
            for (int step = 0; ; step++)
            {
                var tokens = next.cpu().data<long>().ToArray();
                next.Dispose();
                for (int b = 0; b < B; b++)
                {
                    if (results[b] is not null) continue;
                    int t = (int)tokens[b];
                    generated[b].Add(t);
                    options.OnToken?.Invoke(b, t);
                    results[b] = CheckStop(generated[b], options);
                }
                if (step + 1 >= maxNew || results.All(r => r is not null)) break;

                using var scope = torch.NewDisposeScope();
                long offset = P + step;
                var pos = torch.tensor(prompts.Select(p => (long)(p.Length + step)).ToArray(), device: device).unsqueeze(1);
                // Keys: the prompt's valid slots plus every generated slot so far.
                var keyMask = torch.cat(new[] { validKeys, torch.ones(B, step + 1, dtype: ScalarType.Bool, device: device) }, 1);
                var input = torch.tensor(tokens, device: device).unsqueeze(1);
                var hidden = model.Hidden(input, pos, keyMask.view(B, 1, 1, offset + 1), cache, offset);
                next = Sample(model.Logits(hidden).squeeze(1), options, rng).MoveToOuterDisposeScope();
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        return Enumerable.Range(0, B)
            .Select(b => results[b] ?? new GenerationResult(generated[b].ToArray(), decode?.Invoke(generated[b].ToArray()), StopReason.MaxTokens, null))
            .ToList();
    }

    private GenerationResult? CheckStop(List<int> tokens, GenerationOptions options)
    {
        int last = tokens[^1];
        if (options.EosIds.Contains(last))
            return new GenerationResult(tokens.ToArray(), decode?.Invoke(tokens.Take(tokens.Count - 1).ToArray()), StopReason.EndOfSequence, null);
        if (options.StopStrings.Count == 0) return null;
        var text = decode!(tokens.ToArray());
        foreach (var s in options.StopStrings)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0) return new GenerationResult(tokens.ToArray(), text[..at], StopReason.StopString, s);
        }
        return null;
    }

    /// <summary>Next ids [B] from logits [B,V]: argmax at temperature 0, else top-k / top-p filtered sampling.</summary>
    internal static Tensor Sample(Tensor logits, GenerationOptions o, Generator rng)
    {
        using var scope = torch.NewDisposeScope();
        var l = logits.to(ScalarType.Float32);
        if (o.Temperature == 0) return l.argmax(-1).MoveToOuterDisposeScope();
        l = l / Num(o.Temperature);
        if (o.TopK > 0 && o.TopK < l.shape[^1])
        {
            var kth = l.topk(o.TopK, -1).values.narrow(-1, o.TopK - 1, 1);
            l = l.masked_fill(l.lt(kth), Num(double.NegativeInfinity));
        }
        if (o.TopP < 1)
        {
            var (sorted, order) = l.sort(-1, descending: true);
            var probs = sorted.softmax(-1);
            // Drop a token when the tokens ranked above it already reach top_p (the first always stays).
            var drop = (probs.cumsum(-1) - probs).gt(Num(o.TopP));
            var dropOriginal = torch.zeros_like(drop).scatter(-1, order, drop);
            l = l.masked_fill(dropOriginal, Num(double.NegativeInfinity));
        }
        return l.softmax(-1).multinomial(1, generator: rng).squeeze(-1).MoveToOuterDisposeScope();
    }
}
