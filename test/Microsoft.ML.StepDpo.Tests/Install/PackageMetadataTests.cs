using System.Xml.Linq;

namespace Microsoft.ML.StepDpo.Tests.Install;

[TestClass]
public sealed class PackageMetadataTests
{
    [TestMethod]
    public void PackedNuspecHasReadmeLicenseProjectUrlAndDescription()
    {
        var feed = LocalPackageFeed.Instance;
        var metadata = XDocument.Parse(feed.ReadNuspec()).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Get(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;

        Assert.AreEqual("PACKAGE.md", Get("readme"));
        CollectionAssert.Contains(feed.Entries().ToList(), "PACKAGE.md", "the readme the nuspec names is in the package");
        var license = metadata.Elements().Single(e => e.Name.LocalName == "license");
        Assert.AreEqual("expression", (string?)license.Attribute("type"));
        Assert.AreEqual("MIT", license.Value);
        Assert.IsTrue(Uri.TryCreate(Get("projectUrl"), UriKind.Absolute, out var url) && url.Scheme == "https", $"projectUrl '{Get("projectUrl")}'");
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.AreEqual(Get("projectUrl"), (string?)repository.Attribute("url"));
        StringAssert.Contains(Get("description"), "Step-DPO");
        Assert.IsFalse(string.IsNullOrWhiteSpace(Get("authors")));
        StringAssert.Contains(Get("tags"), "ML.NET");
    }

    [TestMethod]
    public void PackageReadmeSaysHowToInstallWithTheCpuBackend()
    {
        string readme = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "src", "Microsoft.ML.StepDpo", "PACKAGE.md"));
        StringAssert.Contains(readme, "dotnet add package TorchSharp-cpu");
        StringAssert.Contains(readme, "DllNotFoundException");
        string projectUrl = System.Text.RegularExpressions.Regex.Match(
            File.ReadAllText(Path.Combine(RepositoryFiles.Root, "Directory.Build.props")), "<StepDpoRepositoryUrl>(.*)</StepDpoRepositoryUrl>").Groups[1].Value;
        StringAssert.Contains(readme, projectUrl, "the package readme points to the repository README");
    }
}
