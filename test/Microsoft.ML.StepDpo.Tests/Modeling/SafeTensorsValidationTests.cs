using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.StepDpo.Modeling;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// Damaged or hostile safetensors files are refused with one message naming the file, instead of loading garbage:
/// the format requires the tensors' byte ranges to tile the data section exactly (no overlap, no alias, no gap,
/// nothing outside the file).
/// </summary>
[TestClass]
public sealed class SafeTensorsValidationTests
{
    private string dir = "";

    [TestInitialize]
    public void Init() => dir = Directory.CreateTempSubdirectory("stepdpo-st-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    /// <summary>A file written byte by byte: 8-byte header length, the JSON header, then <paramref name="dataBytes"/> bytes.</summary>
    private string Write(string headerJson, int dataBytes)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, header.Length);
        header.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + header.Length + i] = (byte)(i * 37);
        var path = Path.Combine(dir, $"{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Tensor(string name, int begin, int end, string shape = "[2]") =>
        $"\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    private static void AssertRefused(string path, string expected)
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => new SafeTensors.Reader(path).Dispose());
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void AWellFormedFileLoads()
    {
        using var r = new SafeTensors.Reader(Write("{" + Tensor("a", 0, 8) + "," + Tensor("b", 8, 16) + "}", 16));
        Assert.AreEqual(2, r.Entries.Count);
    }

    [TestMethod]
    public void NegativeOffsetsAreRefused() =>
        AssertRefused(Write("{" + Tensor("a", -8, 0) + "," + Tensor("b", 0, 8) + "}", 8), "'a'");

    [TestMethod]
    public void AliasedTensorsAreRefused() =>
        AssertRefused(Write("{" + Tensor("a", 0, 8) + "," + Tensor("b", 0, 8) + "}", 8), "overlaps");

    [TestMethod]
    public void OverlappingTensorsAreRefused() =>
        AssertRefused(Write("{" + Tensor("a", 0, 8) + "," + Tensor("b", 4, 12) + "}", 12), "overlaps");

    [TestMethod]
    public void AGapBetweenTensorsIsRefused() =>
        AssertRefused(Write("{" + Tensor("a", 0, 8) + "," + Tensor("b", 12, 20) + "}", 20), "belong to no tensor");

    [TestMethod]
    public void BytesAfterTheLastTensorAreRefused() =>
        AssertRefused(Write("{" + Tensor("a", 0, 8) + "}", 12), "after the last tensor");

    [TestMethod]
    public void OffsetsBeyondTheFileAreRefused() =>
        AssertRefused(Write("{" + Tensor("a", 0, 8) + "," + Tensor("b", 8, 16) + "}", 12), "truncated");

    [TestMethod]
    public void AnEmptyFileIsRefused()
    {
        var path = Path.Combine(dir, "empty.safetensors");
        File.WriteAllBytes(path, []);
        AssertRefused(path, "not a safetensors file");
    }

    [TestMethod]
    public void ATruncatedHeaderIsRefused() =>
        AssertRefused(Write("{" + Tensor("a", 0, 8), 8), "not valid JSON");

    [TestMethod]
    public void AMalformedEntryIsRefused() =>
        AssertRefused(Write("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8), "malformed");
}
