"""How far PyTorch's own bf16 autocast lands from the float64 reference on the
tiny ECENet golden, to ground the Swift bf16 test's tolerances
(ModelsTests/GoldenTests.testTinyECENetInBF16MatchesReferenceWithinStatedTolerance).

  .venv/bin/python scripts/reference/bf16_agreement.py

Loads Tests/ModelsTests/Golden/tiny_ecenet.safetensors (weights, input, labels,
and the float64 results rounded to float32), runs one forward + backward in
float32 and under torch.autocast("cpu", dtype=torch.bfloat16), and prints, for
each, the metrics the Swift test uses: the worst forward tensor (logits, class
logits, backbone features, every loss term) as max|Δ| / max|ref|; the whole
parameter gradient as ‖Δg‖ / ‖g‖; the worst single parameter gradient against
its own scale (floored at 1e-3 of the largest parameter gradient).
"""
from __future__ import annotations

import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecenet_ref as R  # noqa: E402
from export_goldens import config_from_record  # noqa: E402

GOLDEN = "Tests/ModelsTests/Golden/tiny_ecenet.safetensors"


def rel(a, b, floor=1e-30):
    a, b = a.detach().double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()


def run(g, cfg, bf16: bool):
    torch.manual_seed(0)
    model = R.ECENet(cfg).train().float()
    sd = {k[6:]: v for k, v in g.items() if k.startswith("param.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") or k.endswith("relative_position_index")
                                  for k in missing), (missing, unexpected)
    img = g["input.image"].float()
    label = g["input.label"].long()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(img)
        losses = R.loss_terms(out, label, cfg)
    losses["total"].float().backward()
    nhwc = lambda t: t.permute(0, 2, 3, 1)
    fwd = {"logits": rel(nhwc(out["logits"]), g["out.logits_nhwc"]),
           "class_logits": rel(out["class_logits"], g["out.class_logits"])}
    for s in range(4):
        fwd[f"feature {s}"] = rel(nhwc(out["feats"][s]), g[f"feat.backbone.{s}"])
    for k in ("seg", "cls", "focal", "dice", "div", "total"):
        fwd[f"loss {k}"] = rel(losses[k].reshape(1), g[f"loss.{k}"].reshape(1))
    params = dict(model.named_parameters())
    scale = max(g[f"grad.{n}"].abs().max().item() for n in params)
    d2 = r2 = 0.0
    per = {}
    for n, p in params.items():
        ref = g[f"grad.{n}"].double()
        d2 += ((p.grad.double() - ref) ** 2).sum().item()
        r2 += (ref ** 2).sum().item()
        per[n] = rel(p.grad, ref, floor=1e-3 * scale)
    worst_f = max(fwd.items(), key=lambda kv: kv[1])
    worst_p = max(per.items(), key=lambda kv: kv[1])
    return worst_f, (d2 / r2) ** 0.5, worst_p


def main():
    torch.set_num_threads(1)
    g = load_file(GOLDEN)
    with safe_open(GOLDEN, "pt") as f:
        cfg = config_from_record(f.metadata())   # the golden's own model
    for name, bf16 in (("float32", False), ("bf16 autocast", True)):
        (fn, fe), whole, (pn, pe) = run(g, cfg, bf16)
        print(f"PyTorch {torch.__version__} {name}: forward worst {fe:.2e} ({fn}); "
              f"gradient ||dg||/||g|| {whole:.2e}; worst parameter gradient {pe:.2e} ({pn})")


if __name__ == "__main__":
    main()
