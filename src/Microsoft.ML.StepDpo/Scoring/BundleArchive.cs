using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// A folder as one byte array so that it can travel inside an ML.NET model, and back: unpacked once per content
/// into a content-addressed cache folder (atomic rename, safe when several threads or processes load at once).
/// </summary>
/// <remarks>
/// Format 2 (written now): <c>"SDPOBND2"</c>, the length of the payload (int64, little-endian), then the payload
/// compressed with Brotli after splitting it into 4 byte planes (byte 0 of every 4-byte group, then byte 1, …). The
/// payload is a zip of the folder with stored (uncompressed) entries. Weights are mostly fp32/bf16 values whose
/// sign/exponent bytes are far more regular than their mantissa bytes, so the planes compress well (a 54 MB fp32
/// scorer shrinks by ~15 %; deflate over interleaved floats gains nothing) and decode fast. This matters at
/// <c>Model.Load</c>: ML.NET's ValueMapping re-encodes its whole lookup table with deflate when it is loaded, at a
/// cost that grows with the size of the stored bytes. Lossless: the same bytes come back.
/// Format 1 (still read): a plain zip with deflated entries.
/// </remarks>
internal static class BundleArchive
{
    private static ReadOnlySpan<byte> Magic => "SDPOBND2"u8;
    private const int HeaderLength = 16;
    private const int Planes = 4;
    private const int BrotliQuality = 2;
    private const int BrotliWindow = 24;

    /// <summary>Packs <paramref name="folder"/>; <paramref name="legacyFormat"/> writes format 1 (benchmarks compare the two).</summary>
    public static byte[] Pack(string folder, bool legacyFormat = false)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
                zip.CreateEntryFromFile(file, Path.GetRelativePath(folder, file).Replace('\\', '/'),
                    legacyFormat ? CompressionLevel.Fastest : CompressionLevel.NoCompression);
        return legacyFormat ? ms.ToArray() : Encode(ms.GetBuffer().AsSpan(0, (int)ms.Length));
    }

    /// <summary>Format 2 of <paramref name="payload"/>.</summary>
    internal static byte[] Encode(ReadOnlySpan<byte> payload)
    {
        var planes = new byte[payload.Length];
        SplitPlanes(payload, planes);
        var packed = new byte[HeaderLength + BrotliEncoder.GetMaxCompressedLength(payload.Length)];
        Magic.CopyTo(packed);
        BinaryPrimitives.WriteInt64LittleEndian(packed.AsSpan(8), payload.Length);
        if (!BrotliEncoder.TryCompress(planes, packed.AsSpan(HeaderLength), out int written, BrotliQuality, BrotliWindow))
            throw new InvalidOperationException("Brotli could not compress the bundle.");
        return packed[..(HeaderLength + written)];
    }

    /// <summary>The payload (a zip) of a bundle in either format.</summary>
    internal static byte[] Decode(ReadOnlySpan<byte> bundle, string what)
    {
        if (!bundle.StartsWith(Magic)) return bundle.ToArray(); // format 1: the zip itself
        long length = bundle.Length >= HeaderLength ? BinaryPrimitives.ReadInt64LittleEndian(bundle[8..]) : -1;
        if (length < 0 || length > Array.MaxLength)
            throw new InvalidDataException($"The {what} stored in this model is corrupted (bad bundle header).");
        var planes = new byte[length];
        if (!BrotliDecoder.TryDecompress(bundle[HeaderLength..], planes, out int written) || written != length)
            throw new InvalidDataException($"The {what} stored in this model is corrupted (its bundle does not decompress).");
        var payload = new byte[length];
        JoinPlanes(planes, payload);
        return payload;
    }

    /// <summary>Byte k of every <see cref="Planes"/>-byte group goes to plane k; a short tail stays as it is, at the end.</summary>
    internal static void SplitPlanes(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int n = source.Length / Planes;
        Span<byte> p0 = destination[..n], p1 = destination.Slice(n, n), p2 = destination.Slice(2 * n, n), p3 = destination.Slice(3 * n, n);
        for (int i = 0, j = 0; i < n; i++, j += Planes)
        {
            p0[i] = source[j]; p1[i] = source[j + 1]; p2[i] = source[j + 2]; p3[i] = source[j + 3];
        }
        source[(Planes * n)..].CopyTo(destination[(Planes * n)..]);
    }

    internal static void JoinPlanes(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int n = source.Length / Planes;
        ReadOnlySpan<byte> p0 = source[..n], p1 = source.Slice(n, n), p2 = source.Slice(2 * n, n), p3 = source.Slice(3 * n, n);
        for (int i = 0, j = 0; i < n; i++, j += Planes)
        {
            destination[j] = p0[i]; destination[j + 1] = p1[i]; destination[j + 2] = p2[i]; destination[j + 3] = p3[i];
        }
        source[(Planes * n)..].CopyTo(destination[(Planes * n)..]);
    }

    /// <summary>The folder holding the files of the bundle whose SHA-256 is <paramref name="sha"/>, under
    /// <c>%TEMP%/cacheName/sha</c>; <paramref name="marker"/> is a file every complete bundle has. <paramref name="prepare"/>
    /// runs on the extracted files before they become visible under that name.</summary>
    public static string Unpack(ReadOnlySpan<byte> bundle, string sha, string cacheName, string marker, string what, Action<string>? prepare = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), cacheName, sha);
        if (File.Exists(Path.Combine(dir, marker))) return dir;
        var payload = Decode(bundle, what);
        var tmp = dir + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var zip = new ZipArchive(new MemoryStream(payload, writable: false), ZipArchiveMode.Read))
                zip.ExtractToDirectory(tmp);
            prepare?.Invoke(tmp);
        }
        catch (InvalidDataException e)
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            throw new InvalidDataException($"The {what} stored in this model is corrupted (its bundle is not a valid archive).", e);
        }
        try { Directory.Move(tmp, dir); }
        catch (IOException) when (File.Exists(Path.Combine(dir, marker))) { Directory.Delete(tmp, true); } // another thread won
        return dir;
    }

    /// <summary>Runs <paramref name="fill"/> on a fresh staging folder and packs it.</summary>
    public static byte[] Create(Action<string> fill, bool legacyFormat = false)
    {
        var staging = Directory.CreateTempSubdirectory("stepdpo-bundle-").FullName;
        try
        {
            fill(staging);
            return Pack(staging, legacyFormat);
        }
        finally { Directory.Delete(staging, true); }
    }
}
