using System.Text;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// The per-user folder under the temp directory that holds unpacked bundles: <c>&lt;temp&gt;/stepdpo-&lt;user&gt;/</c>,
/// mode 0700 on Unix. A folder of that name that is not ours (a link, or one we may not chmod: another user's) is
/// not used; this process then unpacks into a private folder of its own instead.
/// </summary>
internal static class PrivateCacheFolder
{
    private static readonly Lazy<string> s_root = new(ChooseRoot, LazyThreadSafetyMode.ExecutionAndPublication);

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The per-user cache folder (created on first use).</summary>
    public static string Root => s_root.Value;

    /// <summary>Creates <paramref name="path"/> readable and writable by its owner only, or makes an existing folder so;
    /// false when it is a link or not ours (changing a folder's mode is allowed to its owner only).</summary>
    internal static bool TryMakePrivate(string path)
    {
        try
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(path); // %TEMP% is per-user on Windows
                return new DirectoryInfo(path).LinkTarget is null;
            }
            if (!Directory.Exists(path)) Directory.CreateDirectory(path, OwnerOnly);
            if (new DirectoryInfo(path).LinkTarget is not null) return false;
            File.SetUnixFileMode(path, OwnerOnly);
            return (File.GetUnixFileMode(path) & ~OwnerOnly) == 0;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            return false;
        }
    }

    private static string ChooseRoot()
    {
        var shared = Path.Combine(Path.GetTempPath(), "stepdpo-" + SafeUserName());
        if (TryMakePrivate(shared)) return shared;
        System.Diagnostics.Trace.TraceWarning($"'{shared}' is not a private folder of this user; unpacking into a folder of this process instead.");
        return Directory.CreateTempSubdirectory("stepdpo-private-").FullName; // 0700 on Unix
    }

    private static string SafeUserName()
    {
        var sb = new StringBuilder();
        foreach (char c in Environment.UserName)
            sb.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        return sb.Length == 0 ? "user" : sb.ToString();
    }
}
