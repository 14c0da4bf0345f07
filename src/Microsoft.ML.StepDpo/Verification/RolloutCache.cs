using System.Collections.Concurrent;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>What the rollouts from one prefix gave: how many were drawn, and those that reached the reference answer.</summary>
internal sealed record RolloutOutcome(int Drawn, IReadOnlyList<string> Successful);

/// <summary>
/// Rollout outcomes by (problem, prefix). The rollout verifier reuses an estimate it already has for a prefix, and the
/// preference pipeline takes the successful rollouts from the last good prefix as rectification candidates.
/// </summary>
internal sealed class RolloutCache
{
    private readonly ConcurrentDictionary<(string Problem, string Prefix), RolloutOutcome> _outcomes = new();

    public bool TryGet(string problem, string prefix, out RolloutOutcome outcome) =>
        _outcomes.TryGetValue((problem, prefix), out outcome!);

    public void Set(string problem, string prefix, RolloutOutcome outcome) => _outcomes[(problem, prefix)] = outcome;

    /// <summary>Forgets every prefix of <paramref name="problem"/> (when the problem is done).</summary>
    public void Forget(string problem)
    {
        foreach (var key in _outcomes.Keys)
            if (key.Problem == problem) _outcomes.TryRemove(key, out _);
    }

    public int Count => _outcomes.Count;
}
