namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// Replacing a file so that a crash or an error never leaves it half written and never destroys what is being read:
/// the content goes to a temporary file in the same folder (so the final rename stays on one file system), which
/// replaces the target only once complete. The target's folder is created when missing.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>; on any exception the old file is untouched.</summary>
    /// <typeparam name="T">What <paramref name="write"/> returns (e.g. a row count).</typeparam>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="write">Writes the whole content to the stream it is given (a temporary file).</param>
    /// <returns>What <paramref name="write"/> returned.</returns>
    public static T Write<T>(string path, Func<Stream, T> write)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        string temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            T result;
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                result = write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            return result;
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
