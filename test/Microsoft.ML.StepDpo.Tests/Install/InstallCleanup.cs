namespace Microsoft.ML.StepDpo.Tests.Install;

[TestClass]
public static class InstallCleanup
{
    /// <summary>The packed feed is shared by the install and metadata tests; it goes once all tests are done.</summary>
    [AssemblyCleanup]
    public static void RemoveLocalFeed() => LocalPackageFeed.CleanUp();
}
