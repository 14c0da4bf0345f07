namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Finds the first wrong step of a solution with verifiers tried in a configured order.
/// </summary>
/// <remarks>
/// Combining rule: for each step, the first verifier (in the configured order) whose verdict is not
/// <see cref="StepVerdict.Unknown"/> decides it. The first error is the first step decided
/// <see cref="StepVerdict.Incorrect"/> (or also <see cref="StepVerdict.Neutral"/>, when
/// <c>neutralIsError</c> is set — the Step-DPO authors' judge protocol counts a neutral step as the error).
/// Steps after an error do not matter, so a verifier is only asked about the steps up to the earliest
/// error found so far, and not at all once every one of those steps is decided.
/// </remarks>
internal sealed class FirstErrorLocator
{
    private readonly IReadOnlyList<IStepVerifier> _verifiers;
    private readonly bool _neutralIsError;

    public FirstErrorLocator(IReadOnlyList<IStepVerifier> verifiers, bool neutralIsError = false)
    {
        if (verifiers is null)
            throw new ArgumentNullException(nameof(verifiers));
        if (verifiers.Count == 0)
            throw new ArgumentException("At least one verifier is needed.", nameof(verifiers));
        if (verifiers.Any(v => v is null))
            throw new ArgumentException("A verifier is null.", nameof(verifiers));
        _verifiers = verifiers;
        _neutralIsError = neutralIsError;
    }

    public async Task<FirstErrorLocation> LocateAsync(StepVerificationInput input, CancellationToken cancellationToken = default)
    {
        if (input is null)
            throw new ArgumentNullException(nameof(input));
        int n = input.Steps.Count;
        var verdicts = new StepVerdict[n];
        var deciders = new string?[n];
        var evidence = Enumerable.Repeat(string.Empty, n).ToArray();

        foreach (var verifier in _verifiers)
        {
            int horizon = FirstError(verdicts) is int e and >= 0 ? e + 1 : n;
            if (Enumerable.Range(0, horizon).All(i => verdicts[i] != StepVerdict.Unknown))
                break;
            var view = horizon == n ? input : input with { Steps = input.Steps.Take(horizon).ToArray() };
            var checks = await verifier.VerifyAsync(view, cancellationToken).ConfigureAwait(false);
            if (checks is null || checks.Count != horizon)
            {
                throw new InvalidOperationException(
                    $"Verifier '{verifier.Name}' returned {checks?.Count ?? 0} verdicts for {horizon} steps; it must return one per step.");
            }

            for (int i = 0; i < horizon; i++)
            {
                if (verdicts[i] != StepVerdict.Unknown || checks[i] is null)
                    continue;
                if (checks[i].Verdict != StepVerdict.Unknown)
                {
                    verdicts[i] = checks[i].Verdict;
                    deciders[i] = verifier.Name;
                    evidence[i] = checks[i].Evidence ?? string.Empty;
                }
                else if (!string.IsNullOrEmpty(checks[i].Evidence))
                {
                    evidence[i] = checks[i].Evidence;
                }
            }
        }

        var steps = Enumerable.Range(0, n).Select(i => new LocatedStep(verdicts[i], deciders[i], evidence[i])).ToArray();
        int first = FirstError(verdicts);
        if (first < 0)
            return new FirstErrorLocation(FirstErrorLocation.NoError, steps, string.Empty);
        return new FirstErrorLocation(first + 1, steps, $"step {first + 1} [{deciders[first]}]: {evidence[first]}");
    }

    private int FirstError(StepVerdict[] verdicts)
    {
        for (int i = 0; i < verdicts.Length; i++)
        {
            if (verdicts[i] == StepVerdict.Incorrect || (_neutralIsError && verdicts[i] == StepVerdict.Neutral))
                return i;
        }

        return -1;
    }
}
