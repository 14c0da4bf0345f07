using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}</c>), then raw
/// little-endian tensor bytes. Reading streams one tensor at a time straight into tensor memory.
/// </summary>
internal static class SafeTensors
{
    /// <summary>One tensor's header entry; offsets are relative to the start of the data section.</summary>
    internal sealed record Entry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    internal static ScalarType ParseDtype(string s) => s switch
    {
        "F32" => ScalarType.Float32, "F16" => ScalarType.Float16, "BF16" => ScalarType.BFloat16, "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64, "I32" => ScalarType.Int32, "I16" => ScalarType.Int16, "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte, "BOOL" => ScalarType.Bool,
        _ => throw new NotSupportedException($"safetensors dtype '{s}' is not supported."),
    };

    internal static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32", ScalarType.Float16 => "F16", ScalarType.BFloat16 => "BF16", ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64", ScalarType.Int32 => "I32", ScalarType.Int16 => "I16", ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8", ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"dtype {t} cannot be stored in safetensors."),
    };

    private static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    /// <summary>An open safetensors file.</summary>
    internal sealed class Reader : IDisposable
    {
        private readonly FileStream stream;
        private readonly long dataStart;

        public Reader(string path)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors reading needs a little-endian machine.");
            Path = path;
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            try
            {
                Span<byte> len = stackalloc byte[8];
                if (stream.Length < 8) throw new InvalidDataException($"{path} is not a safetensors file ({stream.Length} bytes, shorter than its 8-byte header length).");
                stream.ReadExactly(len);
                long n = BinaryPrimitives.ReadInt64LittleEndian(len);
                if (n <= 0 || n > 100_000_000 || 8 + n > stream.Length)
                    throw new InvalidDataException($"{path} is not a safetensors file (header length {n}, file {stream.Length} bytes).");
                var header = new byte[n];
                stream.ReadExactly(header);
                dataStart = 8 + n;
                JsonObject root;
                try { root = JsonNode.Parse(header) as JsonObject ?? throw new InvalidDataException($"{path}: the safetensors header is not a JSON object."); }
                catch (JsonException e) { throw new InvalidDataException($"{path}: the safetensors header is not valid JSON ({e.Message})."); }
                foreach (var (name, node) in root)
                {
                    if (name == "__metadata__") continue;
                    Entries[name] = ParseEntry(path, name, node);
                }
                CheckLayout(path, Entries.Values, stream.Length - dataStart);
            }
            catch
            {
                stream.Dispose();
                throw;
            }
        }

        public string Path { get; }
        public Dictionary<string, Entry> Entries { get; } = new(StringComparer.Ordinal);

        private static Entry ParseEntry(string path, string name, JsonNode? node)
        {
            try
            {
                var dtype = ParseDtype(node!["dtype"]!.GetValue<string>());
                var shape = node["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
                var off = node["data_offsets"]!.AsArray();
                if (off.Count != 2 || shape.Any(d => d < 0)) throw new FormatException();
                var e = new Entry(name, dtype, shape, off[0]!.GetValue<long>(), off[1]!.GetValue<long>());
                long expected = shape.Aggregate(1L, (a, b) => checked(a * b)) * ElementSize(dtype);
                if (e.Begin < 0 || e.End - e.Begin != expected)
                    throw new InvalidDataException($"{path}: tensor '{name}' has data_offsets [{e.Begin}, {e.End}], which do not hold its shape [{string.Join(", ", shape)}] of {DtypeName(dtype)} ({expected} bytes).");
                return e;
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or OverflowException or NotSupportedException)
            {
                string why = e is NotSupportedException ? e.Message : "needs dtype, shape (non-negative integers) and data_offsets [begin, end]";
                throw new InvalidDataException($"{path}: the safetensors header entry of tensor '{name}' is malformed: {why}");
            }
        }

        /// <summary>
        /// The format's layout rule: the tensors' byte ranges, in offset order, tile the data section exactly — each
        /// starts where the previous ends, from 0 to the end of the file — so no tensor overlaps or aliases another
        /// and no byte lies outside a tensor.
        /// </summary>
        private static void CheckLayout(string path, IEnumerable<Entry> entries, long dataLength)
        {
            long at = 0;
            foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (e.Begin != at)
                    throw new InvalidDataException(e.Begin < at
                        ? $"{path}: tensor '{e.Name}' (bytes {e.Begin}–{e.End}) overlaps another tensor's data (which ends at {at}); safetensors tensors may not share bytes."
                        : $"{path}: bytes {at}–{e.Begin} of the data section belong to no tensor (before '{e.Name}'); the file is damaged or not safetensors.");
                at = e.End;
            }
            if (at != dataLength)
                throw new InvalidDataException(at > dataLength
                    ? $"{path}: the tensors need {at} data bytes but the file holds {dataLength}; it is truncated."
                    : $"{path}: the data section has {dataLength - at} bytes after the last tensor; the file is damaged or not safetensors.");
        }

        /// <summary>A new CPU tensor in the stored dtype.</summary>
        public Tensor Read(string name)
        {
            var e = Entries[name];
            var t = torch.empty(e.Shape, dtype: e.DType);
            stream.Position = dataStart + e.Begin;
            if (e.End > e.Begin) t.ReadBytesFromStream(stream);
            return t;
        }

        /// <summary>Copies the stored tensor into <paramref name="destination"/> (converting dtype/device); peak extra memory is this one tensor.</summary>
        public void ReadInto(string name, Tensor destination)
        {
            using var t = Read(name);
            using var _ = torch.no_grad();
            destination.copy_(t);
        }

        public void Dispose() => stream.Dispose();
    }

    /// <summary>Writes tensors (any device, any layout) to one safetensors file.</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = Header(list.Select(t => (t.Name, t.Tensor.dtype, t.Tensor.shape)), metadata);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(header);
        foreach (var (_, t) in list)
        {
            if (t.numel() == 0) continue;
            using var c = t.detach().cpu().contiguous();
            c.WriteBytesToStream(stream);
        }
    }

    /// <summary>
    /// The bytes before the data section: the 8-byte header length, then the JSON header — compact, "__metadata__"
    /// first, then each tensor's dtype, shape and data_offsets in the given order (tensors stored back to back) — padded
    /// with spaces to a multiple of 8 bytes, as the safetensors library writes it.
    /// </summary>
    internal static byte[] Header(IEnumerable<(string Name, ScalarType DType, long[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        var meta = new JsonObject();
        foreach (var (k, v) in metadata ?? new Dictionary<string, string> { ["format"] = "pt" }) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var (name, dtype, shape) in tensors)
        {
            long bytes = shape.Aggregate(1L, (a, b) => checked(a * b)) * ElementSize(dtype);
            header[name] = new JsonObject
            {
                ["dtype"] = DtypeName(dtype),
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;   // data section 8-byte aligned, padded with spaces
        var result = new byte[8 + padded];
        BinaryPrimitives.WriteInt64LittleEndian(result, padded);
        json.CopyTo(result, 8);
        result.AsSpan(8 + json.Length).Fill((byte)' ');
        return result;
    }
}
