namespace Microsoft.ML.StepDpo.Training;

/// <summary>The preference loss family (TRL's names). δ = β·[(log πθ(w) − log πref(w)) − (log πθ(l) − log πref(l))].</summary>
public enum PreferenceLossKind
{
    /// <summary>DPO / Step-DPO: −log σ(δ); with label smoothing ε (cDPO): −(1−ε)·log σ(δ) − ε·log σ(−δ).</summary>
    Sigmoid,
    /// <summary>IPO: (Δ − 1/(2β))², Δ the difference of length-averaged log-ratios.</summary>
    Ipo,
    /// <summary>SLiC hinge: relu(1 − δ).</summary>
    Hinge,
    /// <summary>Robust DPO: ((1−ε)·(−log σ(δ)) − ε·(−log σ(−δ))) / (1−2ε).</summary>
    Robust,
}
