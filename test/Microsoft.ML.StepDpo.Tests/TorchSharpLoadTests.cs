using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests;

[TestClass]
public sealed class TorchSharpLoadTests
{
    // Fails with "version `GLIBCXX_3.4.32' not found" on Debian 12 when the native patch is not applied.
    [TestMethod]
    public void ForwardAndBackwardRunOnCpu()
    {
        // Throws with the dynamic loader's message (e.g. the GLIBCXX one) when the backend does not load.
        Microsoft.ML.StepDpo.Modeling.TorchRuntime.EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1);
        var lin = nn.Linear(3, 2);
        var x = torch.tensor(new float[] { 1, 2, 3, -1, 0, 0.5f }).reshape(2, 3);
        var y = lin.forward(x);
        var loss = y.pow(2).sum();
        loss.backward();

        // Forward equals x·Wᵀ + b computed by hand.
        var w = lin.weight!.detach();
        var b = lin.bias!.detach();
        var expected = x.matmul(w.t()) + b;
        Assert.IsTrue(y.detach().allclose(expected, rtol: 1e-6, atol: 1e-6));
        // d/dW of sum(y²) = 2·yᵀ·x.
        var gradW = 2 * y.detach().t().matmul(x);
        Assert.IsTrue(lin.weight!.grad!.allclose(gradW, rtol: 1e-5, atol: 1e-6));
        Assert.AreEqual(DeviceType.CPU, y.device_type);
    }
}
