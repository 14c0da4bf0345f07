using System.IO.Compression;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// A folder as one byte array (a zip) so that it can travel inside an ML.NET model, and back: unpacked once per
/// content into a content-addressed cache folder (atomic rename, safe when several threads load at once).
/// </summary>
internal static class BundleArchive
{
    public static byte[] Pack(string folder)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
                zip.CreateEntryFromFile(file, Path.GetRelativePath(folder, file).Replace('\\', '/'), CompressionLevel.Fastest);
        return ms.ToArray();
    }

    /// <summary>The folder holding <paramref name="bundle"/>'s files under <c>%TEMP%/cacheName/sha256</c>;
    /// <paramref name="marker"/> is a file every complete bundle has.</summary>
    public static string Unpack(byte[] bundle, string cacheName, string marker, string what)
    {
        string dir = Path.Combine(Path.GetTempPath(), cacheName, ScorerBundle.Sha256(bundle));
        if (File.Exists(Path.Combine(dir, marker))) return dir;
        var tmp = dir + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using var zip = new ZipArchive(new MemoryStream(bundle), ZipArchiveMode.Read);
            zip.ExtractToDirectory(tmp);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The {what} stored in this model is corrupted (its bundle is not a valid archive).", e);
        }
        try { Directory.Move(tmp, dir); }
        catch (IOException) when (File.Exists(Path.Combine(dir, marker))) { Directory.Delete(tmp, true); } // another thread won
        return dir;
    }

    /// <summary>Runs <paramref name="fill"/> on a fresh staging folder and packs it.</summary>
    public static byte[] Create(Action<string> fill)
    {
        var staging = Directory.CreateTempSubdirectory("stepdpo-bundle-").FullName;
        try
        {
            fill(staging);
            return Pack(staging);
        }
        finally { Directory.Delete(staging, true); }
    }
}
