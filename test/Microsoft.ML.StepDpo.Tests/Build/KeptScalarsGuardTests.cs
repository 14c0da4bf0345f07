using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.ML.StepDpo.Modeling;

namespace Microsoft.ML.StepDpo.Tests.Build;

/// <summary>
/// TorchSharp frees a temporary Scalar from its finalizer, possibly while libtorch reads it (see
/// <see cref="KeptScalars"/>): the library must pass numbers to tensor operations only through
/// <see cref="KeptScalars.Num(double)"/>. This reads the library's IL and lists every method that converts a number
/// to a Scalar itself or calls a TorchSharp operator that does (<c>tensor * 0.5</c>, <c>1 - tensor</c>).
/// </summary>
[TestClass]
public sealed class KeptScalarsGuardTests
{
    [TestMethod]
    public void TheLibraryPassesNoTemporaryScalarToTorchSharp()
    {
        var offenders = TemporaryScalarSites(typeof(KeptScalars).Assembly.Location)
            .Where(site => !site.StartsWith(nameof(KeptScalars) + "::", StringComparison.Ordinal))
            .ToList();
        Assert.IsEmpty(offenders, "temporary Scalars (use KeptScalars.Num):\n" + string.Join("\n", offenders));
    }

    [TestMethod]
    public void TheGuardFindsATemporaryScalar()
    {
        // This test assembly still has such calls (e.g. TorchSharpLoadTests), so the scan is shown to see them.
        var sites = TemporaryScalarSites(typeof(KeptScalarsGuardTests).Assembly.Location);
        Assert.IsTrue(sites.Any(s => s.StartsWith("TorchSharpLoadTests::", StringComparison.Ordinal)), string.Join("\n", sites));
    }

    /// <summary>"Type::Method: what" for each method body that calls Scalar's implicit conversion or a TorchSharp
    /// Tensor operator taking a number.</summary>
    private static List<string> TemporaryScalarSites(string assemblyPath)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        var names = new TypeNames();
        var targets = new Dictionary<int, string>();
        foreach (var handle in md.MemberReferences)
        {
            var member = md.GetMemberReference(handle);
            if (member.GetKind() != MemberReferenceKind.Method || member.Parent.Kind != HandleKind.TypeReference) continue;
            string type = md.GetString(md.GetTypeReference((TypeReferenceHandle)member.Parent).Name);
            string name = md.GetString(member.Name);
            var parameters = member.DecodeMethodSignature(names, null).ParameterTypes;
            bool conversion = type == "Scalar" && name == "op_Implicit"
                // Tensor's implicit conversion from a Scalar always throws ("Should not be called").
                || (type == "Tensor" && name == "op_Implicit" && parameters.Contains("Scalar"));
            bool numberOperator = type == "Tensor" && name.StartsWith("op_", StringComparison.Ordinal) && parameters.Any(TypeNames.IsNumber);
            // TorchSharp's + and add/add_ without an alpha pass alpha = 1 as a temporary Scalar of their own (so does
            // number - tensor, computed as -tensor + number); its - and sub call libtorch without one.
            numberOperator |= type == "Tensor" && name == "op_Addition";
            numberOperator |= type == "Tensor" && name is "add" or "add_" && parameters.Length == 1;
            numberOperator |= type == "Tensor" && name == "op_Subtraction" && parameters.Length == 2 && parameters[0] == "Scalar";
            if (conversion || numberOperator)
                targets[MetadataTokens.GetToken(handle)] = $"{type}.{name}({string.Join(", ", parameters)})";
        }
        var sites = new List<string>();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(typeHandle);
            foreach (var methodHandle in type.GetMethods())
            {
                var method = md.GetMethodDefinition(methodHandle);
                if (method.RelativeVirtualAddress == 0) continue;
                var il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILBytes() ?? [];
                // call (0x28) / callvirt (0x6F) followed by a member token; a coincidental byte match can only add a site.
                for (int i = 0; i + 4 < il.Length; i++)
                    if ((il[i] == 0x28 || il[i] == 0x6F) && targets.TryGetValue(BitConverter.ToInt32(il, i + 1), out var what))
                        sites.Add($"{md.GetString(type.Name)}::{md.GetString(method.Name)}: {what}");
            }
        }
        return sites;
    }

    /// <summary>Just enough of a signature decoder to tell numbers from other parameter types.</summary>
    private sealed class TypeNames : ISignatureTypeProvider<string, object?>
    {
        public static bool IsNumber(string type) => type is "Double" or "Single" or "Int32" or "Int64" or "Int16" or "Byte" or "SByte";
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => reader.GetString(reader.GetTypeDefinition(handle).Name);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => reader.GetString(reader.GetTypeReference(handle).Name);
        public string GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) => "?";
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[,]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) => genericType;
        public string GetGenericMethodParameter(object? context, int index) => "T";
        public string GetGenericTypeParameter(object? context, int index) => "T";
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fn";
    }
}
