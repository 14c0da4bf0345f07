namespace StepDpo.Samples;

/// <summary>A command line that cannot work as given (a bad option value, a missing file, output = input): exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
