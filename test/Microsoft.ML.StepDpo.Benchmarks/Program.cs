using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Microsoft.ML.StepDpo.Benchmarks.AnswerBenchmarks).Assembly).Run(args);
