using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// A folder as one byte array so that it can travel inside an ML.NET model, and back: unpacked once per content
/// into a content-addressed folder of a per-user, owner-only cache, checked against the bundle before each use
/// (atomic rename, safe when several threads or processes load at once).
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

    /// <summary>The folder under which bundles of kind <paramref name="cacheName"/> are unpacked, one folder per bundle hash.</summary>
    internal static string CacheDirectory(string cacheName) => Path.Combine(PrivateCacheFolder.Root, cacheName);

    // Per unpacked folder: the SHA-256 of every file it must hold, known in this process (from its own extraction or
    // from a check against the bundle).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyDictionary<string, string>> s_knownFiles = new();

    /// <summary>Forgets which unpacked folders this process extracted or checked, as a new process would (tests).</summary>
    internal static void ForgetCheckedFolders() => s_knownFiles.Clear();

    /// <summary>The folder holding the files of the bundle whose SHA-256 is <paramref name="sha"/>, under
    /// <c>&lt;per-user cache&gt;/cacheName/sha</c>; <paramref name="marker"/> is a file every complete bundle has. <paramref name="prepare"/>
    /// runs on the extracted files before they become visible under that name; <paramref name="expectPrepared"/> turns the
    /// hashes of the bundle's entries into those of the prepared files (given a reader of entries), so that a folder
    /// unpacked earlier can be checked against the bundle.</summary>
    /// <remarks>
    /// The folder is trusted only after its files are checked, because anything that can write there (another program
    /// of the same user, a stale or half-deleted copy) would otherwise change what every later load reads. Every use
    /// re-hashes the files on disk and compares them, file set included, with hashes that do not come from the
    /// folder: those this process recorded when it extracted the files itself, or else, in a new process, hashes
    /// derived from the bundle (its zip entries streamed through SHA-256; nothing is written). A manifest stored next
    /// to the files would prove nothing, since whoever edits the files can edit it too. A mismatch re-extracts. What
    /// remains trusted is the window between the check and the reads, inside a folder only its owner can write.
    /// </remarks>
    public static string Unpack(ReadOnlySpan<byte> bundle, string sha, string cacheName, string marker, string what,
        Action<string>? prepare = null, Action<IDictionary<string, string>, Func<string, byte[]>>? expectPrepared = null)
    {
        string root = CacheDirectory(cacheName);
        Directory.CreateDirectory(root);
        string dir = Path.Combine(root, sha);
        if (File.Exists(Path.Combine(dir, marker)))
        {
            var expected = s_knownFiles.TryGetValue(dir, out var known) ? known : ExpectedFiles(bundle, what, expectPrepared);
            if (SameFiles(HashFiles(dir), expected))
            {
                s_knownFiles[dir] = expected;
                return dir;
            }
            System.Diagnostics.Trace.TraceWarning($"The unpacked {what} in '{dir}' differs from the model's bundle; unpacking it again.");
            Discard(dir);
        }
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
        var hashes = HashFiles(tmp);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                Directory.Move(tmp, dir);
                break;
            }
            catch (IOException) when (Directory.Exists(dir))
            {
                // Another thread or process unpacked it first: use theirs if it holds exactly our files.
                if (SameFiles(HashFiles(dir), hashes))
                {
                    Directory.Delete(tmp, true);
                    break;
                }
                if (attempt >= 2) throw;
                Discard(dir);
            }
        }
        s_knownFiles[dir] = hashes;
        // A new folder in the cache: keep the cache within its bound (this folder stays; folders in use stay).
        UnpackedCacheLimit.Trim(PrivateCacheFolder.Root, UnpackedCacheLimit.MaxBytes, dir);
        return dir;
    }

    /// <summary>The SHA-256 of every file of the bundle's zip, by relative path with '/', adjusted by <paramref name="expectPrepared"/>.</summary>
    private static Dictionary<string, string> ExpectedFiles(ReadOnlySpan<byte> bundle, string what, Action<IDictionary<string, string>, Func<string, byte[]>>? expectPrepared)
    {
        var payload = Decode(bundle, what);
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var zip = new ZipArchive(new MemoryStream(payload, writable: false), ZipArchiveMode.Read);
            foreach (var entry in zip.Entries)
            {
                if (entry.FullName.EndsWith('/')) continue; // a folder
                using var s = entry.Open();
                expected[entry.FullName.Replace('\\', '/')] = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(s)).ToLowerInvariant();
            }
            expectPrepared?.Invoke(expected, name =>
            {
                using var s = (zip.GetEntry(name) ?? throw new InvalidDataException($"The {what} stored in this model is corrupted ({name} is missing).")).Open();
                using var ms = new MemoryStream();
                s.CopyTo(ms);
                return ms.ToArray();
            });
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The {what} stored in this model is corrupted (its bundle is not a valid archive).", e);
        }
        return expected;
    }

    private static Dictionary<string, string> HashFiles(string dir)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            using var s = File.OpenRead(file);
            hashes[Path.GetRelativePath(dir, file).Replace('\\', '/')] = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(s)).ToLowerInvariant();
        }
        return hashes;
    }

    private static bool SameFiles(IReadOnlyDictionary<string, string> actual, IReadOnlyDictionary<string, string> expected) =>
        actual.Count == expected.Count && expected.All(kv => actual.TryGetValue(kv.Key, out var h) && h == kv.Value);

    // Moves a folder out of the way at once (a rename), then deletes it; readers that still hold its files keep them.
    private static void Discard(string dir)
    {
        var aside = dir + ".stale-" + Guid.NewGuid().ToString("N");
        try { Directory.Move(dir, aside); }
        catch (IOException) { return; } // already moved or replaced by someone else
        try { Directory.Delete(aside, true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* left for the next temp clean-up */ }
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
