namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// One writer per output: an operating-system lock on a lock file next to the output (a file held open with
/// FileShare.None), released when disposed or when the process dies, even by kill -9, so a crash never leaves a
/// stale lock. A second writer is refused at once with the holder's process id (recorded in a side file, since the
/// locked file itself cannot be read). The library's writers take it themselves (a trainer's Fit on its checkpoint folder,
/// step-preference building on its output); an application takes it for outputs of its own, e.g. a folder it writes
/// model files into after Fit.
/// </summary>
public sealed class OutputLock : IDisposable
{
    private readonly FileStream _handle;

    private OutputLock(FileStream handle) => _handle = handle;

    /// <summary>Takes the lock of the output file <paramref name="path"/> (lock file <c>path.lock</c>), or throws
    /// <see cref="InvalidOperationException"/> naming the holder.</summary>
    /// <param name="path">The output file.</param>
    /// <param name="what">How the output is named in the message, e.g. "The step-preference output".</param>
    public static OutputLock ForFile(string path, string what) => Acquire(Path.GetFullPath(path) + ".lock", path, what);

    /// <summary>Takes the lock of the output folder <paramref name="directory"/> (created if missing; lock file
    /// <c>.stepdpo.lock</c> inside it), or throws <see cref="InvalidOperationException"/> naming the holder.</summary>
    /// <param name="directory">The output folder.</param>
    /// <param name="what">How the output is named in the message, e.g. "The output folder".</param>
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

    /// <summary>Releases the lock.</summary>
    public void Dispose() => _handle.Dispose();
}
