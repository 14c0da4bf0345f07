using Microsoft.ML.StepDpo.Modeling;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// An independent, deliberately naive Qwen2 forward pass in double precision with explicit loops
/// (written from the architecture's definition, not from the TorchSharp code) to cross-check the model.
/// </summary>
internal static class PlainQwen2Reference
{
    /// <summary>Logits [T][V] of one sequence, given weights by Hugging Face name (row-major).</summary>
    public static double[][] Logits(Qwen2Config c, IReadOnlyDictionary<string, double[]> w, int[] ids)
    {
        int T = ids.Length, H = c.HiddenSize, d = c.HeadDim, nh = c.NumAttentionHeads, nkv = c.NumKeyValueHeads;
        var x = new double[T][];
        for (int t = 0; t < T; t++)
            x[t] = w["model.embed_tokens.weight"].Skip(ids[t] * H).Take(H).ToArray();

        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var hn = x.Select(r => RmsNorm(r, w[p + "input_layernorm.weight"], c.RmsNormEps)).ToArray();
            var q = hn.Select(r => Linear(r, w[p + "self_attn.q_proj.weight"], Bias(w, p + "self_attn.q_proj.bias"), nh * d)).ToArray();
            var k = hn.Select(r => Linear(r, w[p + "self_attn.k_proj.weight"], Bias(w, p + "self_attn.k_proj.bias"), nkv * d)).ToArray();
            var v = hn.Select(r => Linear(r, w[p + "self_attn.v_proj.weight"], Bias(w, p + "self_attn.v_proj.bias"), nkv * d)).ToArray();
            for (int t = 0; t < T; t++)
            {
                for (int h = 0; h < nh; h++) Rope(q[t], h * d, d, t, c.RopeTheta);
                for (int h = 0; h < nkv; h++) Rope(k[t], h * d, d, t, c.RopeTheta);
            }
            var attn = new double[T][];
            for (int t = 0; t < T; t++)
            {
                attn[t] = new double[nh * d];
                for (int h = 0; h < nh; h++)
                {
                    int kvh = h / (nh / nkv);   // query head h uses key/value head h / group size
                    var scores = new double[t + 1];
                    for (int s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (int i = 0; i < d; i++) dot += q[t][h * d + i] * k[s][kvh * d + i];
                        scores[s] = dot / Math.Sqrt(d);
                    }
                    double max = scores.Max(), sum = 0;
                    for (int s = 0; s <= t; s++) { scores[s] = Math.Exp(scores[s] - max); sum += scores[s]; }
                    for (int s = 0; s <= t; s++)
                        for (int i = 0; i < d; i++)
                            attn[t][h * d + i] += scores[s] / sum * v[s][kvh * d + i];
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Linear(attn[t], w[p + "self_attn.o_proj.weight"], null, H);
                for (int i = 0; i < H; i++) x[t][i] += o[i];
                var n2 = RmsNorm(x[t], w[p + "post_attention_layernorm.weight"], c.RmsNormEps);
                var g = Linear(n2, w[p + "mlp.gate_proj.weight"], null, c.IntermediateSize);
                var u = Linear(n2, w[p + "mlp.up_proj.weight"], null, c.IntermediateSize);
                var a = g.Select((gi, i) => gi / (1 + Math.Exp(-gi)) * u[i]).ToArray();
                var dn = Linear(a, w[p + "mlp.down_proj.weight"], null, H);
                for (int i = 0; i < H; i++) x[t][i] += dn[i];
            }
        }
        var head = c.TieWordEmbeddings ? w["model.embed_tokens.weight"] : w["lm_head.weight"];
        return x.Select(r => Linear(RmsNorm(r, w["model.norm.weight"], c.RmsNormEps), head, null, c.VocabSize)).ToArray();
    }

    private static double[]? Bias(IReadOnlyDictionary<string, double[]> w, string name) => w.TryGetValue(name, out var b) ? b : null;

    private static double[] RmsNorm(double[] x, double[] g, double eps)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        return x.Select((v, i) => v / Math.Sqrt(ms + eps) * g[i]).ToArray();
    }

    // y = W x + b with W [outDim, x.Length] row-major.
    private static double[] Linear(double[] x, double[] W, double[]? b, int outDim)
    {
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double s = b?[o] ?? 0;
            for (int i = 0; i < x.Length; i++) s += W[o * x.Length + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    // Rotates pairs (i, i + d/2) of one head by angle pos / theta^(2i/d).
    private static void Rope(double[] v, int start, int d, int pos, double theta)
    {
        for (int i = 0; i < d / 2; i++)
        {
            double angle = pos / Math.Pow(theta, 2.0 * i / d);
            double a = v[start + i], b = v[start + i + d / 2];
            v[start + i] = a * Math.Cos(angle) - b * Math.Sin(angle);
            v[start + i + d / 2] = b * Math.Cos(angle) + a * Math.Sin(angle);
        }
    }
}
