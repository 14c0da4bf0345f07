using System.Text.Json;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>Reading JSON strings that may be invalid text.</summary>
internal static class JsonText
{
    /// <summary>
    /// The string value of <paramref name="element"/>; false when it cannot be text — JSON allows an escaped lone
    /// UTF-16 surrogate ("\ud800"), which System.Text.Json refuses to turn into a string.
    /// </summary>
    public static bool TryGetString(JsonElement element, out string? value)
    {
        try
        {
            value = element.GetString();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = null;
            return false;
        }
    }
}
