namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// One writer per output: an operating-system lock on a lock file next to the output (a file held open with
/// FileShare.None), released when disposed or when the process dies, even by kill -9, so a crash never leaves a
/// stale lock. A second writer is refused at once with the holder's process id (recorded in a side file, since the
/// locked file itself cannot be read).
/// </summary>
internal sealed class OutputLock : IDisposable
{
    private readonly FileStream _handle;

    private OutputLock(FileStream handle) => _handle = handle;

    /// <summary>Takes the lock of the output file <paramref name="path"/> (<c>path.lock</c>), or throws naming the holder.</summary>
    /// <param name="path">The output file.</param>
    /// <param name="what">How the output is named in the message, e.g. "The step-preference output".</param>
    public static OutputLock ForFile(string path, string what) => Acquire(Path.GetFullPath(path) + ".lock", path, what);

    /// <summary>Takes the lock of the output folder <paramref name="directory"/> (created if missing), or throws naming the holder.</summary>
    public static OutputLock ForFolder(string directory, string what) =>
        Acquire(Path.Combine(Path.GetFullPath(directory), ".stepdpo.lock"), directory, what);

    private static OutputLock Acquire(string lockPath, string output, string what)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        FileStream handle;
        try
        {
            handle = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            string holder = "another process";
            try { holder = $"process {File.ReadAllText(lockPath + ".pid").Trim()}"; } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new InvalidOperationException(
                $"{what} '{output}' is being written by {holder} (lock {lockPath}). Wait for it to finish, or write elsewhere.");
        }
        try { File.WriteAllText(lockPath + ".pid", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        catch (IOException) { } // the id only improves the message
        return new OutputLock(handle);
    }

    public void Dispose() => _handle.Dispose();
}
