"""Cross-check our Qwen2/Llama implementation against Hugging Face transformers (not run in CI).

1. On a machine with .NET:   dotnet run --project tools/StepDpo.Tools -c Release -- crosscheck-fixture --output artifacts/crosscheck
2. Copy artifacts/crosscheck to a machine with torch + transformers, then:
       python docs/crosscheck/qwen2_logits.py artifacts/crosscheck
Each sub-folder (qwen2/, llama/) holds a tiny random fp32 checkpoint saved by our code and our logits for
fixed input ids (stepdpo_logits.json). The script loads the checkpoint with AutoModelForCausalLM
(Qwen2ForCausalLM / LlamaForCausalLM), prints transformers' logits, and the max absolute difference.
Pass: max |diff| <= 1e-4.
"""
import json
import pathlib
import sys

import torch
from transformers import AutoModelForCausalLM


def check(folder: pathlib.Path) -> float:
    ours = json.loads((folder / "stepdpo_logits.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = torch.tensor(ours["input_ids"], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    expected = torch.tensor(ours["logits"], dtype=torch.float32).reshape(ours["shape"])
    diff = (logits - expected).abs().max().item()
    print(f"{folder.name}: {type(model).__name__}, logits {tuple(logits.shape)}")
    print(f"  transformers logits[0, -1, :8] = {logits[0, -1, :8].tolist()}")
    print(f"  ours         logits[0, -1, :8] = {expected[0, -1, :8].tolist()}")
    print(f"  max |transformers - ours| = {diff:.3e}  {'OK' if diff <= 1e-4 else 'MISMATCH'}")
    return diff


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/crosscheck")
    worst = max(check(d) for d in sorted(root.iterdir()) if (d / "stepdpo_logits.json").exists())
    sys.exit(0 if worst <= 1e-4 else 1)
