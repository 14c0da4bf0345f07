using System.Runtime.CompilerServices;

// The benchmark project measures the plain (reference) unit loop against the fast one in the same run.
[assembly: InternalsVisibleTo("Microsoft.ML.StepDpo.Benchmarks")]
