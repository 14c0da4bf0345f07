// Makes a versioned symbol requirement weak in an ELF shared library.
//
// TorchSharp 0.107's libLibTorchSharp.so requires GLIBCXX_3.4.32 (GCC 13's libstdc++) for a single
// marker symbol that is never called. Setting VER_FLG_WEAK on that version requirement lets the
// dynamic loader accept an older libstdc++. This file is compiled twice: by MSBuild's
// RoslynCodeTaskFactory (as the PatchWeakElfVersion build task) and by the test project (which
// defines STEPDPO_ELF_TESTS so only the patch logic is compiled).
using System;
using System.IO;
using System.Text;

namespace Microsoft.ML.StepDpo.Build
{
    /// <summary>Outcome of <see cref="ElfVersionPatcher.MakeVersionWeak"/>.</summary>
    public enum ElfPatchResult
    {
        /// <summary>The version requirement was found and its weak flag was set now.</summary>
        Patched,
        /// <summary>The requirement was already weak; nothing was written.</summary>
        AlreadyWeak,
        /// <summary>The file does not require that version; nothing was written.</summary>
        VersionNotRequired,
        /// <summary>The file is not a little-endian ELF with a .gnu.version_r section.</summary>
        NotElf,
    }

    public static class ElfVersionPatcher
    {
        public const ushort VerFlagWeak = 0x2;
        private const uint ShtGnuVerneed = 0x6ffffffe;

        /// <summary>Sets VER_FLG_WEAK in every Vernaux entry named <paramref name="versionName"/>.</summary>
        public static ElfPatchResult MakeVersionWeak(string path, string versionName)
        {
            byte[] data = File.ReadAllBytes(path);
            var result = MakeVersionWeak(data, versionName);
            if (result == ElfPatchResult.Patched)
            {
                // Write to a temporary file then move it over, so a crash never leaves half a library.
                string tmp = path + ".stepdpo-patch.tmp";
                File.WriteAllBytes(tmp, data);
                File.Copy(tmp, path, overwrite: true);
                File.Delete(tmp);
            }
            return result;
        }

        /// <summary>In-memory form of <see cref="MakeVersionWeak(string,string)"/>; edits <paramref name="elf"/>.</summary>
        public static ElfPatchResult MakeVersionWeak(byte[] elf, string versionName)
        {
            if (elf.Length < 52 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                return ElfPatchResult.NotElf;
            bool is64 = elf[4] == 2;
            if (elf[5] != 1) return ElfPatchResult.NotElf; // big-endian ELF is not handled
            if (is64 && elf.Length < 64) return ElfPatchResult.NotElf;

            long shoff = is64 ? (long)U64(elf, 0x28) : U32(elf, 0x20);
            int shentsize = U16(elf, is64 ? 0x3A : 0x2E);
            int shnum = U16(elf, is64 ? 0x3C : 0x30);
            if (shoff <= 0 || shnum == 0 || shentsize == 0 || shoff + (long)shnum * shentsize > elf.Length)
                return ElfPatchResult.NotElf;

            long SectionField(int index, int off32, int off64, bool wide)
            {
                long b = shoff + (long)index * shentsize;
                if (!is64) return U32(elf, (int)(b + off32));
                return wide ? (long)U64(elf, (int)(b + off64)) : U32(elf, (int)(b + off64));
            }

            int verneed = -1;
            for (int i = 0; i < shnum; i++)
                if ((uint)SectionField(i, 0x04, 0x04, false) == ShtGnuVerneed) { verneed = i; break; }
            if (verneed < 0) return ElfPatchResult.NotElf;

            long vnOffset = SectionField(verneed, 0x10, 0x18, true);
            int strIndex = (int)SectionField(verneed, 0x18, 0x28, false); // sh_link -> .dynstr
            long vnCount = SectionField(verneed, 0x1C, 0x2C, false);     // sh_info -> number of Verneed entries
            if (strIndex <= 0 || strIndex >= shnum) return ElfPatchResult.NotElf;
            long strOffset = SectionField(strIndex, 0x10, 0x18, true);
            long strSize = SectionField(strIndex, 0x14, 0x20, true);

            bool found = false, changed = false;
            long vn = vnOffset;
            for (long n = 0; n < vnCount && vn + 16 <= elf.Length; n++)
            {
                int auxCount = U16(elf, (int)vn + 2);
                long aux = vn + U32(elf, (int)vn + 8);
                for (int a = 0; a < auxCount && aux + 16 <= elf.Length; a++)
                {
                    long nameOff = U32(elf, (int)aux + 8);
                    if (nameOff < strSize && ReadCString(elf, strOffset + nameOff) == versionName)
                    {
                        found = true;
                        ushort flags = U16(elf, (int)aux + 4);
                        if ((flags & VerFlagWeak) == 0)
                        {
                            flags |= VerFlagWeak;
                            elf[aux + 4] = (byte)(flags & 0xff);
                            elf[aux + 5] = (byte)(flags >> 8);
                            changed = true;
                        }
                    }
                    uint next = U32(elf, (int)aux + 12);
                    if (next == 0) break;
                    aux += next;
                }
                uint vnNext = U32(elf, (int)vn + 12);
                if (vnNext == 0) break;
                vn += vnNext;
            }
            if (!found) return ElfPatchResult.VersionNotRequired;
            return changed ? ElfPatchResult.Patched : ElfPatchResult.AlreadyWeak;
        }

        /// <summary>Reads the flags of the first Vernaux entry named <paramref name="versionName"/>, or -1.</summary>
        public static int ReadVersionFlags(byte[] elf, string versionName)
        {
            var copy = (byte[])elf.Clone();
            // Reuse the walker: patching a copy tells us whether the flag was set before.
            var r = MakeVersionWeak(copy, versionName);
            return r switch
            {
                ElfPatchResult.AlreadyWeak => VerFlagWeak,
                ElfPatchResult.Patched => 0,
                _ => -1,
            };
        }

        /// <summary>True when a libstdc++ on this host defines the given symbol version.</summary>
        public static bool HostLibStdCxxHas(string versionName)
        {
            string[] candidates =
            {
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
                "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/lib/aarch64-linux-gnu/libstdc++.so.6",
                "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            };
            byte[] needle = Encoding.ASCII.GetBytes(versionName + "\0");
            foreach (var c in candidates)
                if (File.Exists(c) && IndexOf(File.ReadAllBytes(c), needle) >= 0) return true;
            // Not found where we looked: treat the host as old, since a weak requirement is harmless.
            return false;
        }

        private static int IndexOf(byte[] hay, byte[] needle)
        {
            for (int i = 0; i + needle.Length <= hay.Length; i++)
            {
                if (hay[i] != needle[0]) continue;
                int j = 1;
                while (j < needle.Length && hay[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }

        private static string ReadCString(byte[] b, long offset)
        {
            long end = offset;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)offset, (int)(end - offset));
        }

        private static ushort U16(byte[] b, int o) => (ushort)(b[o] | b[o + 1] << 8);
        private static uint U32(byte[] b, int o) => (uint)(b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24);
        private static ulong U64(byte[] b, int o) => U32(b, o) | (ulong)U32(b, o + 4) << 32;
    }

#if !STEPDPO_ELF_TESTS
    /// <summary>MSBuild task: patches libLibTorchSharp.so copies under an output folder.</summary>
    public class PatchWeakElfVersion : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required] public string Directory { get; set; } = "";
        [Microsoft.Build.Framework.Required] public string VersionName { get; set; } = "";
        public string FileName { get; set; } = "libLibTorchSharp.so";

        public override bool Execute()
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux))
                return true;
            if (!System.IO.Directory.Exists(Directory)) return true;
            if (ElfVersionPatcher.HostLibStdCxxHas(VersionName))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "libstdc++ provides {0}; no patch needed.", VersionName);
                return true;
            }
            foreach (var file in System.IO.Directory.EnumerateFiles(Directory, FileName, SearchOption.AllDirectories))
            {
                try
                {
                    var r = ElfVersionPatcher.MakeVersionWeak(file, VersionName);
                    var importance = r == ElfPatchResult.Patched ? Microsoft.Build.Framework.MessageImportance.Normal : Microsoft.Build.Framework.MessageImportance.Low;
                    Log.LogMessage(importance, "Microsoft.ML.StepDpo: {0}: {1} ({2} made weak for this host's older libstdc++).", file, r, VersionName);
                }
                catch (Exception e)
                {
                    Log.LogWarning("Microsoft.ML.StepDpo: could not patch {0}: {1}", file, e.Message);
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
