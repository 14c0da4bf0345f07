using System.Text;
using Microsoft.ML.StepDpo.Build;

namespace Microsoft.ML.StepDpo.Tests.Build;

[TestClass]
public sealed class ElfVersionPatcherTests
{
    /// <summary>
    /// Builds a minimal little-endian ELF64 shared-object image: a .dynstr, a .gnu.version_r that
    /// requires libstdc++.so.6 at GLIBCXX_3.4.30 and GLIBCXX_3.4.32 and libc.so.6 at GLIBC_2.34,
    /// and a section-name table. Returns the image and the file offsets of each Vernaux vna_flags.
    /// </summary>
    internal static (byte[] Image, Dictionary<string, int> FlagOffsets) BuildElf(ushort initialFlags = 0)
    {
        var dynstr = new List<byte> { 0 };
        int Str(List<byte> table, string s) { int o = table.Count; table.AddRange(Encoding.ASCII.GetBytes(s)); table.Add(0); return o; }
        int libstdcxx = Str(dynstr, "libstdc++.so.6"), libc = Str(dynstr, "libc.so.6");
        int v30 = Str(dynstr, "GLIBCXX_3.4.30"), v32 = Str(dynstr, "GLIBCXX_3.4.32"), g234 = Str(dynstr, "GLIBC_2.34");

        var shstr = new List<byte> { 0 };
        int nDynstr = Str(shstr, ".dynstr"), nVerneed = Str(shstr, ".gnu.version_r"), nShstr = Str(shstr, ".shstrtab");

        // .gnu.version_r: Verneed(16) Vernaux(16) Vernaux(16) | Verneed(16) Vernaux(16)
        var vr = new byte[80];
        void W16(byte[] b, int o, int v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
        void W32(byte[] b, int o, long v) { for (int i = 0; i < 4; i++) b[o + i] = (byte)(v >> (8 * i)); }
        void W64(byte[] b, int o, long v) { for (int i = 0; i < 8; i++) b[o + i] = (byte)(v >> (8 * i)); }
        W16(vr, 0, 1); W16(vr, 2, 2); W32(vr, 4, libstdcxx); W32(vr, 8, 16); W32(vr, 12, 48);
        W32(vr, 16, 0x08922974); W16(vr, 20, 0); W16(vr, 22, 2); W32(vr, 24, v30); W32(vr, 28, 16);
        W32(vr, 32, 0x08922972); W16(vr, 36, initialFlags); W16(vr, 38, 3); W32(vr, 40, v32); W32(vr, 44, 0);
        W16(vr, 48, 1); W16(vr, 50, 1); W32(vr, 52, libc); W32(vr, 56, 16); W32(vr, 60, 0);
        W32(vr, 64, 0x069691b4); W16(vr, 68, 0); W16(vr, 70, 4); W32(vr, 72, g234); W32(vr, 76, 0);

        int dynstrOff = 64, vrOff = dynstrOff + dynstr.Count;
        vrOff = (vrOff + 7) & ~7;
        int shstrOff = vrOff + vr.Length;
        int shOff = (shstrOff + shstr.Count + 7) & ~7;
        var img = new byte[shOff + 4 * 64];
        img[0] = 0x7f; img[1] = (byte)'E'; img[2] = (byte)'L'; img[3] = (byte)'F';
        img[4] = 2; img[5] = 1; img[6] = 1;
        W16(img, 0x10, 3); W16(img, 0x12, 62); W32(img, 0x14, 1);
        W64(img, 0x28, shOff); W16(img, 0x34, 64); W16(img, 0x3A, 64); W16(img, 0x3C, 4); W16(img, 0x3E, 3);
        dynstr.ToArray().CopyTo(img, dynstrOff);
        vr.CopyTo(img, vrOff);
        shstr.ToArray().CopyTo(img, shstrOff);
        void Section(int i, int name, uint type, long off, long size, int link, int info)
        {
            int b = shOff + i * 64;
            W32(img, b, name); W32(img, b + 4, type); W64(img, b + 0x18, off); W64(img, b + 0x20, size);
            W32(img, b + 0x28, link); W32(img, b + 0x2C, info);
        }
        Section(1, nDynstr, 3, dynstrOff, dynstr.Count, 0, 0);
        Section(2, nVerneed, 0x6ffffffe, vrOff, vr.Length, 1, 2);
        Section(3, nShstr, 3, shstrOff, shstr.Count, 0, 0);
        return (img, new() { ["GLIBCXX_3.4.30"] = vrOff + 20, ["GLIBCXX_3.4.32"] = vrOff + 36, ["GLIBC_2.34"] = vrOff + 68 });
    }

    [TestMethod]
    public void SetsWeakFlagOnlyOnTheNamedVersion()
    {
        var (img, flags) = BuildElf();
        var before = (byte[])img.Clone();
        Assert.AreEqual(ElfPatchResult.Patched, ElfVersionPatcher.MakeVersionWeak(img, "GLIBCXX_3.4.32"));
        Assert.AreEqual(ElfVersionPatcher.VerFlagWeak, img[flags["GLIBCXX_3.4.32"]]);
        // Exactly one byte changed in the whole image.
        int diffs = img.Zip(before).Count(p => p.First != p.Second);
        Assert.AreEqual(1, diffs);
        Assert.AreEqual(0, img[flags["GLIBCXX_3.4.30"]]);
        Assert.AreEqual(0, img[flags["GLIBC_2.34"]]);
    }

    [TestMethod]
    public void SecondPatchIsANoOp()
    {
        var (img, _) = BuildElf();
        ElfVersionPatcher.MakeVersionWeak(img, "GLIBCXX_3.4.32");
        var once = (byte[])img.Clone();
        Assert.AreEqual(ElfPatchResult.AlreadyWeak, ElfVersionPatcher.MakeVersionWeak(img, "GLIBCXX_3.4.32"));
        CollectionAssert.AreEqual(once, img);
    }

    [TestMethod]
    public void KeepsOtherFlagBits()
    {
        var (img, flags) = BuildElf(initialFlags: 0x1);
        Assert.AreEqual(ElfPatchResult.Patched, ElfVersionPatcher.MakeVersionWeak(img, "GLIBCXX_3.4.32"));
        Assert.AreEqual(0x3, img[flags["GLIBCXX_3.4.32"]]);
    }

    [TestMethod]
    public void VersionInALaterVerneedEntryIsFound()
    {
        var (img, flags) = BuildElf();
        Assert.AreEqual(ElfPatchResult.Patched, ElfVersionPatcher.MakeVersionWeak(img, "GLIBC_2.34"));
        Assert.AreEqual(ElfVersionPatcher.VerFlagWeak, img[flags["GLIBC_2.34"]]);
    }

    [TestMethod]
    public void AbsentVersionAndNonElfInputAreLeftAlone()
    {
        var (img, _) = BuildElf();
        var before = (byte[])img.Clone();
        Assert.AreEqual(ElfPatchResult.VersionNotRequired, ElfVersionPatcher.MakeVersionWeak(img, "GLIBCXX_9.9.9"));
        CollectionAssert.AreEqual(before, img);
        var text = Encoding.ASCII.GetBytes("#!/bin/sh\necho this is not an ELF file at all, just text padding........\n");
        Assert.AreEqual(ElfPatchResult.NotElf, ElfVersionPatcher.MakeVersionWeak(text, "GLIBCXX_3.4.32"));
        var truncated = img.Take(40).ToArray();
        Assert.AreEqual(ElfPatchResult.NotElf, ElfVersionPatcher.MakeVersionWeak(truncated, "GLIBCXX_3.4.32"));
    }

    [TestMethod]
    public void FilePatchWritesOnlyWhenNeeded()
    {
        var (img, flags) = BuildElf();
        var path = Path.Combine(Path.GetTempPath(), $"elf-{Guid.NewGuid():N}.so");
        try
        {
            File.WriteAllBytes(path, img);
            Assert.AreEqual(ElfPatchResult.Patched, ElfVersionPatcher.MakeVersionWeak(path, "GLIBCXX_3.4.32"));
            Assert.AreEqual(ElfVersionPatcher.VerFlagWeak, File.ReadAllBytes(path)[flags["GLIBCXX_3.4.32"]]);
            // A stamp far in the past: any write would move it, however coarse the file system's clock.
            var stamp = new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc);
            File.SetLastWriteTimeUtc(path, stamp);
            Assert.AreEqual(ElfPatchResult.AlreadyWeak, ElfVersionPatcher.MakeVersionWeak(path, "GLIBCXX_3.4.32"));
            Assert.AreEqual(stamp, File.GetLastWriteTimeUtc(path));
        }
        finally { File.Delete(path); }
    }

    /// <summary>The real TorchSharp library copied next to the tests requires GLIBCXX_3.4.32 and, on a host
    /// whose libstdc++ lacks it, the build has already made that requirement weak.</summary>
    [TestMethod]
    public void RealTorchSharpLibraryInOutputIsPatchedWhenHostNeedsIt()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("Linux only.");
        var lib = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        Assert.IsNotNull(lib, "libLibTorchSharp.so was not copied to the test output folder.");
        var bytes = File.ReadAllBytes(lib);
        int flags = ElfVersionPatcher.ReadVersionFlags(bytes, "GLIBCXX_3.4.32");
        Assert.AreNotEqual(-1, flags, "TorchSharp no longer requires GLIBCXX_3.4.32; the patch may be obsolete.");
        if (!ElfVersionPatcher.HostLibStdCxxHas("GLIBCXX_3.4.32"))
            Assert.AreEqual(ElfVersionPatcher.VerFlagWeak, flags & ElfVersionPatcher.VerFlagWeak);
    }
}
