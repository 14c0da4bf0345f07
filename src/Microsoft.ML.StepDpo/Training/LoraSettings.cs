namespace Microsoft.ML.StepDpo.Training;

/// <summary>LoRA adapter settings (PEFT names). The base model stays frozen; only adapters train.</summary>
public sealed class LoraSettings
{
    /// <summary>Adapter rank r. Default 8.</summary>
    public int Rank { get; set; } = 8;
    /// <summary>Scaling numerator α (the update is scaled by α/r). Default 16.</summary>
    public double Alpha { get; set; } = 16;
    /// <summary>Dropout on the adapter input. Default 0.05.</summary>
    public double Dropout { get; set; } = 0.05;
    /// <summary>Projections that get adapters. Default all: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.</summary>
    public IReadOnlyList<string> TargetModules { get; set; } = Modeling.LoraOptions.AllProjections;

    internal Modeling.LoraOptions ToInternal() => new() { Rank = Rank, Alpha = Alpha, Dropout = Dropout, TargetModules = TargetModules };
}
