using System.Collections.Concurrent;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>What the rollouts from one prefix gave: how many were drawn, and those that reached the reference answer.</summary>
internal sealed record RolloutOutcome(int Drawn, IReadOnlyList<string> Successful);

/// <summary>
/// Rollout outcomes by (problem, prefix), including those still being drawn: whoever asks for a prefix first draws its
/// rollouts and everyone else asking meanwhile awaits the same draw, so concurrent localizations of one problem's
/// solutions never draw a prefix twice. The rollout verifier reuses an estimate it already has for a prefix, and the
/// preference pipeline takes the successful rollouts from the last good prefix as rectification candidates.
/// </summary>
internal sealed class RolloutCache
{
    private readonly ConcurrentDictionary<(string Problem, string Prefix), Lazy<Task<RolloutOutcome>>> _outcomes = new();

    /// <summary>The outcome of a prefix: the one drawn or being drawn, else <paramref name="draw"/>'s (a failed draw is forgotten).</summary>
    public Task<RolloutOutcome> GetOrDraw(string problem, string prefix, Func<Task<RolloutOutcome>> draw)
    {
        var key = (problem, prefix);
        Lazy<Task<RolloutOutcome>>? mine = null;
        mine = new Lazy<Task<RolloutOutcome>>(async () =>
        {
            try
            {
                return await draw().ConfigureAwait(false);
            }
            catch
            {
                _outcomes.TryRemove(new KeyValuePair<(string, string), Lazy<Task<RolloutOutcome>>>(key, mine!));
                throw;
            }
        });
        return _outcomes.GetOrAdd(key, mine).Value;
    }

    /// <summary>A prefix's outcome if it has been drawn (not while it is being drawn).</summary>
    public bool TryGet(string problem, string prefix, out RolloutOutcome outcome)
    {
        if (_outcomes.TryGetValue((problem, prefix), out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
        {
            outcome = lazy.Value.Result;
            return true;
        }
        outcome = null!;
        return false;
    }

    /// <summary>Forgets every prefix of <paramref name="problem"/> (when the problem is done).</summary>
    public void Forget(string problem)
    {
        foreach (var key in _outcomes.Keys)
            if (key.Problem == problem) _outcomes.TryRemove(key, out _);
    }

    public int Count => _outcomes.Count;
}
