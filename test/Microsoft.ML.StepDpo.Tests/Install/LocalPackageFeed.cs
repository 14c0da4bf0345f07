using System.IO.Compression;

namespace Microsoft.ML.StepDpo.Tests.Install;

/// <summary>
/// The library packed once per test run into a temporary folder feed, as the README's install section does, with a
/// version no earlier run used: NuGet's global package cache would otherwise keep serving an older package of the
/// same version. The pack runs on a copy of the sources so the repository's own build outputs are left alone.
/// </summary>
internal sealed class LocalPackageFeed
{
    private static readonly Lazy<LocalPackageFeed> s_instance = new(Create);

    private LocalPackageFeed(string workRoot, string feed, string version, string packagePath)
    {
        WorkRoot = workRoot;
        Feed = feed;
        Version = version;
        PackagePath = packagePath;
    }

    public static LocalPackageFeed Instance => s_instance.Value;
    public static bool IsCreated => s_instance.IsValueCreated;

    /// <summary>A temporary folder for this run's feed, source copy and apps.</summary>
    public string WorkRoot { get; }
    public string Feed { get; }
    public string Version { get; }
    public string PackagePath { get; }

    private static LocalPackageFeed Create()
    {
        string work = Path.Combine(Path.GetTempPath(), "stepdpo-install-" + Guid.NewGuid().ToString("N")[..12]);
        string version = "1.0.0-install." + Guid.NewGuid().ToString("N")[..12];
        string source = Path.Combine(work, "source"), feed = Path.Combine(work, "feed");
        CopySources(RepositoryFiles.Root, source);
        DotnetCli.Run(source, ["pack", "src/Microsoft.ML.StepDpo", "-c", "Release", "-o", feed, $"-p:Version={version}",
            "-nodeReuse:false", "--disable-build-servers"]);
        string package = Path.Combine(feed, $"Microsoft.ML.StepDpo.{version}.nupkg");
        Assert.IsTrue(File.Exists(package), $"dotnet pack wrote no {package}");
        return new LocalPackageFeed(work, feed, version, package);
    }

    /// <summary>The .nuspec inside the package.</summary>
    public string ReadNuspec()
    {
        using var zip = ZipFile.OpenRead(PackagePath);
        var entry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var reader = new StreamReader(entry.Open());
        return reader.ReadToEnd();
    }

    public IReadOnlyList<string> Entries()
    {
        using var zip = ZipFile.OpenRead(PackagePath);
        return zip.Entries.Select(e => e.FullName).ToList();
    }

    /// <summary>Removes the temporary folder and this run's package from NuGet's global cache (best effort).</summary>
    public static void CleanUp()
    {
        if (!IsCreated) return;
        var feed = Instance;
        string cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                       ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var dir in new[] { feed.WorkRoot, Path.Combine(cache, "microsoft.ml.stepdpo", feed.Version.ToLowerInvariant()) })
        {
            try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>What packing the library needs: the root build files and the library's sources (no bin/obj).</summary>
    private static void CopySources(string root, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "NuGet.config" })
        {
            if (File.Exists(Path.Combine(root, file)))
                File.Copy(Path.Combine(root, file), Path.Combine(destination, file));
        }
        CopyTree(Path.Combine(root, "src", "Microsoft.ML.StepDpo"), Path.Combine(destination, "src", "Microsoft.ML.StepDpo"));
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.GetDirectories(from))
        {
            string name = Path.GetFileName(dir);
            if (name is "bin" or "obj") continue;
            CopyTree(dir, Path.Combine(to, name));
        }
    }
}
