#!/usr/bin/env python3
"""Golden files for Tests/NNTests (run by hand; CI and the tests need no Python).

    .venv/bin/python scripts/reference/nn_goldens.py   # any venv with torch + safetensors

Writes, under Tests/NNTests/Golden/:
  python_written.safetensors  tensors of several dtypes written by the Python
                              `safetensors` package (not by our writer), with
                              __metadata__, to check that our reader reads it.
  adamw.safetensors           (this script is its only writer; read by AdamWTests,
                              checked by verify_goldens.py; keys in README.md)
                              torch.optim.AdamW for 5 steps on 4 parameters:
                              "w" (decay), "b" (no decay: weight_decay 0),
                              "head" (lr multiplier 10), "tiny" (gradients ~1e-7,
                              where eps dominates the denominator), with given gradients and
                              a per-step lr taken from mmcv's poly + linear
                              warmup formula (transcribed below).
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from st_util import save_deterministic, sort_header  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "NNTests", "Golden")


def python_written():
    t = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5,
        "f16": np.array([1.5, -2.25, 65504.0, 6.1035156e-05, 5.9604645e-08, 0.0], dtype=np.float16),
        "i64": np.array([[-3, 7], [1 << 40, 0]], dtype=np.int64),
        "i32": np.array([-100000, 5, 0], dtype=np.int32),
        "u8": np.array([0, 1, 255], dtype=np.uint8),
        "scalar": np.array(3.25, dtype=np.float32),
    }
    save_numpy(t, os.path.join(OUT, "python_written.safetensors"), metadata={"format": "np", "note": "nn_goldens"})
    sort_header(os.path.join(OUT, "python_written.safetensors"))  # byte-reproducible re-runs
    # BF16 needs torch; separate file keeps the numpy one independent of torch.
    save_deterministic({"bf16": torch.tensor([1.0, -0.5, 3.140625, 1e30], dtype=torch.bfloat16)},
                       os.path.join(OUT, "python_written_bf16.safetensors"))


def mmcv_poly_warmup(i, base_lr, max_iters, warmup_iters, warmup_ratio, power=1.0, min_lr=0.0):
    # PolyLrUpdaterHook.get_lr, then LrUpdaterHook.get_warmup_lr('linear') while i < warmup_iters.
    coeff = (1 - i / max_iters) ** power
    regular = (base_lr - min_lr) * coeff + min_lr
    if i >= warmup_iters:
        return regular
    k = (1 - i / warmup_iters) * (1 - warmup_ratio)
    return regular * (1 - k)


def adamw():
    torch.manual_seed(0)
    steps, wd, betas, eps = 5, 0.01, (0.9, 0.999), 1e-8
    base_lr, max_iters, warmup_iters, warmup_ratio = 1e-2, 8, 3, 0.1
    shapes = {"w": (3, 4), "b": (4,), "head": (2, 3), "tiny": (5,)}
    grad_scale = {"w": 1.0, "b": 0.1, "head": 1.0, "tiny": 1e-7}
    init = {k: torch.randn(s) for k, s in shapes.items()}
    grads = [{k: torch.randn(s) * grad_scale[k] for k, s in shapes.items()} for _ in range(steps)]
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    groups = [
        {"params": [params["w"]], "weight_decay": wd, "lr_mult": 1.0},
        {"params": [params["b"]], "weight_decay": 0.0, "lr_mult": 1.0},
        {"params": [params["head"]], "weight_decay": wd, "lr_mult": 10.0},
        {"params": [params["tiny"]], "weight_decay": wd, "lr_mult": 1.0},
    ]
    opt = torch.optim.AdamW(groups, lr=base_lr, betas=betas, eps=eps, weight_decay=wd)
    lrs = []
    for i in range(steps):
        lr = mmcv_poly_warmup(i, base_lr, max_iters, warmup_iters, warmup_ratio)
        lrs.append(lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        for k, p in params.items():
            p.grad = grads[i][k].clone()
        opt.step()
    out = {"lr": torch.tensor(lrs, dtype=torch.float64).float()}
    for k in shapes:
        out[f"init.{k}"] = init[k]
        for i in range(steps):
            out[f"grad.{i}.{k}"] = grads[i][k]
        out[f"final.{k}"] = params[k].detach()
        st = opt.state[params[k]]
        out[f"exp_avg.{k}"] = st["exp_avg"]
        out[f"exp_avg_sq.{k}"] = st["exp_avg_sq"]
    meta = {"steps": str(steps), "weight_decay": str(wd), "beta1": str(betas[0]), "beta2": str(betas[1]),
            "eps": str(eps), "base_lr": str(base_lr), "max_iters": str(max_iters),
            "warmup_iters": str(warmup_iters), "warmup_ratio": str(warmup_ratio),
            "lrs_float64": ",".join(repr(x) for x in lrs), "torch": torch.__version__}
    save_deterministic(out, os.path.join(OUT, "adamw.safetensors"), metadata=meta)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    python_written()
    adamw()
    print("wrote", sorted(os.listdir(OUT)))
