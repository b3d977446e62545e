"""Re-reads every golden file and checks it independently of the exporters:
layout twins agree, a handful of ops recomputed with plain numpy loops from
the NHWC / HWIO copies (the layouts Swift uses), AdamW and the lr schedule
recomputed from their formulas, and the model goldens re-run from the stored
weights.  Also reports how far a float32 PyTorch run lands from the (float64
computed) model golden, as a guide for Swift tolerances.

    .venv/bin/python scripts/reference/verify_goldens.py
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file as load_np
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecenet_ref as R  # noqa: E402
from export_goldens import config_from_record  # noqa: E402

FAIL = []


def check(name, got, want, tol=1e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = float(np.max(np.abs(got - want) / (np.abs(want) + 1))) if want.size else 0.0
    ok = got.shape == want.shape and err <= tol
    print(f"  {'ok ' if ok else 'BAD'} {name:42s} rel.err {err:.2e}")
    if not ok:
        FAIL.append(name)


def conv_nhwc(x, w_hwio, b, stride, pad, dil, groups):
    N, H, W, Ci = x.shape
    kh, kw, cig, Co = w_hwio.shape
    Ho = (H + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    Wo = (W + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    y = np.zeros((N, Ho, Wo, Co))
    cog = Co // groups
    for oy in range(Ho):
        for ox in range(Wo):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, oy * stride + i * dil, ox * stride + j * dil, :]   # N, Ci
                    for g in range(groups):
                        y[:, oy, ox, g * cog:(g + 1) * cog] += (
                            patch[:, g * cig:(g + 1) * cig] @ w_hwio[i, j, :, g * cog:(g + 1) * cog])
    return y + (0 if b is None else b)


def bilinear_nhwc(x, Ho, Wo):
    N, H, W, C = x.shape

    def axis(o, i):
        s = np.maximum((np.arange(o) + 0.5) * i / o - 0.5, 0)   # align_corners=False
        i0 = np.minimum(np.floor(s).astype(int), i - 1)
        i1 = np.minimum(i0 + 1, i - 1)
        return i0, i1, s - i0
    y0, y1, fy = axis(Ho, H)
    x0, x1, fx = axis(Wo, W)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bot = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]


def verify_ops():
    path = "Tests/TensorTests/Golden/ops.safetensors"
    print(path)
    T = load_np(path)
    assert all(v.dtype == np.float32 for v in T.values())
    for k in T:
        if k.endswith("_nhwc"):
            check(f"layout {k}", T[k], T[k[:-5] + "_nchw"].transpose(0, 2, 3, 1), 0)
        if k.endswith("_hwio"):
            check(f"layout {k}", T[k], T[k[:-5] + "_oihw"].transpose(2, 3, 1, 0), 0)
    for name, s, p, d, g, bias in (("conv3x3s2", 2, 1, 1, 1, True), ("conv3x3d2", 1, 2, 2, 1, True),
                                   ("patch_embed", 4, 0, 1, 1, True), ("conv1x1", 1, 0, 1, 1, False),
                                   ("dwconv3x3", 1, 1, 1, 6, True), ("fuse3x3", 1, 1, 1, 1, False)):
        y = conv_nhwc(T[f"{name}.x_nhwc"].astype(np.float64), T[f"{name}.w_hwio"].astype(np.float64),
                      T.get(f"{name}.b"), s, p, d, g)
        check(f"{name} numpy NHWC/HWIO", y, T[f"{name}.y_nhwc"])
        # gradient of the bias = sum of gy over N, H, W
        if bias:
            check(f"{name} gb", T[f"{name}.gy_nhwc"].sum((0, 1, 2)), T[f"{name}.gb"])
    x = T["pixel_shuffle.x_nchw"]
    N, Cr, H, W = x.shape
    y = x.reshape(N, Cr // 4, 2, 2, H, W).transpose(0, 1, 4, 2, 5, 3).reshape(N, Cr // 4, 2 * H, 2 * W)
    check("pixel_shuffle rule", y, T["pixel_shuffle.y_nchw"], 0)
    for key in ("adaptive_avg_pool", "adaptive_avg_pool_up"):
        x = T[f"{key}.x_nhwc"].astype(np.float64)
        H, W = x.shape[1:3]
        y = np.zeros((x.shape[0], 3, 3, x.shape[3]))
        for i in range(3):
            for j in range(3):
                h0, h1 = (i * H) // 3, -(-((i + 1) * H) // 3)
                w0, w1 = (j * W) // 3, -(-((j + 1) * W) // 3)
                y[:, i, j] = x[:, h0:h1, w0:w1].mean((1, 2))
        check(f"{key} bins", y, T[f"{key}.y_nhwc"])
    for key in ("bilinear_up2", "bilinear_up4", "bilinear_down"):
        Ho, Wo = T[f"{key}.y_nhwc"].shape[1:3]
        check(f"{key} numpy", bilinear_nhwc(T[f"{key}.x_nhwc"].astype(np.float64), Ho, Wo), T[f"{key}.y_nhwc"])
    x, t = T["sigmoid_focal.x"].astype(np.float64), T["sigmoid_focal.target"]
    p = 1 / (1 + np.exp(-x))
    ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    pt = p * t + (1 - p) * (1 - t)
    check("sigmoid_focal formula", [(ce * (1 - pt) ** 2 * (0.25 * t + 0.75 * (1 - t))).mean()], T["sigmoid_focal.y"])
    check("dice formula", [(1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()], T["dice.y"])
    x, t = T["cross_entropy.x_nhwc"].astype(np.float64), T["cross_entropy.target"]
    lse = np.log(np.exp(x).sum(-1))
    valid = t != 255
    ti = np.where(valid, t, 0).astype(int)
    picked = np.take_along_axis(x, ti[..., None], -1)[..., 0]
    check("cross_entropy ignore 255", [((lse - picked) * valid).sum() / valid.sum()], T["cross_entropy.y"])
    x = T["gelu.x"].astype(np.float64)
    check("gelu erf", 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))), T["gelu.y"])
    x = T["batch_norm.x_nchw"].astype(np.float64)
    n = x.shape[0] * x.shape[2] * x.shape[3]
    var = x.var((0, 2, 3))
    check("batch_norm running_var", 0.9 * T["batch_norm.running_var_before"] + 0.1 * var * n / (n - 1),
          T["batch_norm.running_var_after"])
    check("batch_norm running_mean", 0.9 * T["batch_norm.running_mean_before"] + 0.1 * x.mean((0, 2, 3)),
          T["batch_norm.running_mean_after"])


def check_scaled(name, got, want, tol):
    """max |got - want| / max |want|: for tensors whose scale is far from 1
    (moments of ~1e-7 gradients), where check()'s |want| + 1 would hide everything."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = float(np.max(np.abs(got - want)))
    err = diff / max(float(np.max(np.abs(want))), 1e-300)
    ok = got.shape == want.shape and err <= tol
    print(f"  {'ok ' if ok else 'BAD'} {name:42s} max abs {diff:.2e}, /max|want| {err:.2e}")
    if not ok:
        FAIL.append(name)


def poly_warmup_lr(it, base_lr, max_iters, warmup_iters, warmup_ratio):
    """mmcv PolyLrUpdaterHook(by_epoch=False, power=1, min_lr=0, warmup='linear');
    `it` = updates already done.  The warmup multiplies the poly value."""
    regular = base_lr * (1 - it / max_iters)
    if it < warmup_iters:
        return regular * (1 - (1 - it / warmup_iters) * (1 - warmup_ratio))
    return regular


def verify_adamw():
    """Golden written by nn_goldens.py (torch.optim.AdamW, float32): keys
    init.{p}, grad.{i}.{p} (i = 0..steps-1), final.{p}, exp_avg.{p},
    exp_avg_sq.{p}, lr [steps]; config in the metadata.  Recomputed here in
    float64 from init + grads + the lr formula."""
    path = "Tests/NNTests/Golden/adamw.safetensors"
    print(path)
    T = load_np(path)
    with safe_open(path, "np") as f:
        meta = f.metadata()
    # parameter -> (weight decay applies, lr multiplier), as the groups in nn_goldens.adamw()
    groups = {"w": (True, 1.0), "b": (False, 1.0), "head": (True, 10.0), "tiny": (True, 1.0)}
    steps = int(meta["steps"])
    wd, b1, b2, eps = (float(meta[k]) for k in ("weight_decay", "beta1", "beta2", "eps"))
    base, max_it, warm_it, warm_ratio = (float(meta["base_lr"]), int(meta["max_iters"]),
                                         int(meta["warmup_iters"]), float(meta["warmup_ratio"]))
    want_keys = {"lr"} | {f"{r}.{p}" for p in groups for r in ("init", "final", "exp_avg", "exp_avg_sq")} \
        | {f"grad.{i}.{p}" for p in groups for i in range(steps)}
    if set(T) != want_keys:
        print(f"  BAD keys: missing {sorted(want_keys - set(T))}, unexpected {sorted(set(T) - want_keys)}")
        FAIL.append("adamw keys")
        return
    lrs = [poly_warmup_lr(i, base, max_it, warm_it, warm_ratio) for i in range(steps)]
    check("adamw lr (vs metadata lrs_float64)", lrs, [float(x) for x in meta["lrs_float64"].split(",")], 1e-15)
    check_scaled("adamw lr (vs float32 tensor lr)", np.float32(lrs), T["lr"], 0)
    for name, (decay, mult) in groups.items():
        p = T[f"init.{name}"].astype(np.float64)
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        for i in range(steps):
            t, lr, g = i + 1, lrs[i] * mult, T[f"grad.{i}.{name}"].astype(np.float64)
            p = p * (1 - lr * (wd if decay else 0.0))
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - (lr / (1 - b1 ** t)) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
        # torch runs in float32: ~1e-7 relative per op; 1e-6 leaves room, while a
        # wrong lr multiplier, decay group or eps placement is off by >= 1e-3.
        check_scaled(f"adamw final.{name}", p, T[f"final.{name}"], 1e-6)
        check_scaled(f"adamw exp_avg.{name}", m, T[f"exp_avg.{name}"], 1e-6)
        check_scaled(f"adamw exp_avg_sq.{name}", v, T[f"exp_avg_sq.{name}"], 1e-6)
        # the update itself (final - init), so a tiny step is not hidden by |p|
        check_scaled(f"adamw final.{name} - init.{name}", p - T[f"init.{name}"],
                     T[f"final.{name}"].astype(np.float64) - T[f"init.{name}"], 1e-4)


def rerun_tiny(dtype):
    path = "Tests/ModelsTests/Golden/tiny_ecenet.safetensors"
    T = load_file(path)
    with safe_open(path, "pt") as f:
        cfg = config_from_record(f.metadata())   # the golden's own model
    model = R.ECENet(cfg).train().to(dtype)
    sd = {k[6:]: v.to(dtype) for k, v in T.items() if k.startswith("param.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert all(k.endswith("num_batches_tracked") for k in missing) and not unexpected, (missing, unexpected)
    img = T["input.image"].to(dtype)
    label = T["input.label"].long()
    out = model(img)
    losses = R.loss_terms(out, label, cfg)
    losses["total"].backward()
    return T, model, out, losses


def verify_models():
    print("Tests/ModelsTests/Golden/tiny_ecenet.safetensors")
    T, model, out, losses = rerun_tiny(torch.float64)
    check("input nhwc == nchw", T["input.image_nhwc"], T["input.image"].permute(0, 2, 3, 1), 0)
    raw = T["input.image_raw_nhwc"].double().permute(0, 3, 1, 2)
    check("input normalisation", R.normalize_image(raw), T["input.image"], 1e-6)
    for k in losses:
        check(f"loss.{k} (float64 rerun)", [losses[k].item()], T[f"loss.{k}"], 1e-6)
    worst = max(float(((p.grad - T["grad." + n]).abs().max() / (T["grad." + n].abs().max() + 1e-12)))
                for n, p in model.named_parameters())
    print(f"  grads float64 rerun: worst (max |diff|)/(max |golden|) over params {worst:.2e}")
    FAIL.extend(["grads"] if worst > 1e-5 else [])
    T, model, out, losses = rerun_tiny(torch.float32)
    print("  float32 PyTorch vs golden (guide for Swift tolerances):")
    for k in losses:
        print(f"    loss.{k:6s} {losses[k].item():.7f} golden {T['loss.' + k].item():.7f}")
    # Eight gradients are zero in exact arithmetic (|golden| ~ 1e-17): the biases
    # of backbone.norm{s} and head.fr.{s}.proj.norm, each followed by a 1x1
    # conv + train-mode BatchNorm, which removes any per-channel constant.
    # Normalise by max(max|golden|, 1e-2 * the largest gradient of the model).
    gmax = max(float(T[k].abs().max()) for k in T if k.startswith("grad."))
    zero = [n for n, _ in model.named_parameters() if float(T["grad." + n].abs().max()) < 1e-12]
    print(f"    structurally zero gradients: {zero}")
    rel = sorted((float((p.grad - T['grad.' + n]).abs().max()
                        / max(float(T['grad.' + n].abs().max()), 1e-2 * gmax)), n)
                 for n, p in model.named_parameters())
    print(f"    grads: median normalised max err {rel[len(rel) // 2][0]:.1e}, worst {rel[-1][0]:.1e} ({rel[-1][1]})")
    lg = out["logits"].detach()
    print(f"    logits max abs err {float((lg - T['out.logits']).abs().max()):.1e}")

    print("Tests/ModelsTests/Golden/tiny_swin_official*.safetensors")
    ck = load_file("Tests/ModelsTests/Golden/tiny_swin_official.safetensors")
    G = load_file("Tests/ModelsTests/Golden/tiny_swin_official_import.safetensors")
    for k, v in G.items():
        if k.startswith("interp."):
            want = R.interpolate_rel_pos_table(ck[k[7:]].double(), v.shape[0])
            check(f"{k[7:35]}... bicubic", v, want, 1e-6)
    bb = R.SwinTransformer(R.SwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                                        window_size=4)).double()
    R.load_official_swin(bb, {k: v.double() if v.is_floating_point() else v for k, v in ck.items()})
    with torch.no_grad():
        feats = bb(G["input.image"].double())
    for s in range(4):
        check(f"import feat.backbone.{s}", feats[s].permute(0, 2, 3, 1), G[f"feat.backbone.{s}"], 1e-6)

    print("Tests/ModelsTests/Golden/tiny_resnet_official*.safetensors")
    verify_resnet()


def resnet_d8_functional(sd, x, depths, training):
    """ResNetV1c-D8 straight from a state dict with F.conv2d / F.batch_norm,
    written apart from ecenet_ref.ResNetV1c: deep stem, 3x3/2 max pool,
    bottlenecks with stride (1, 2, 1, 1) and dilation (1, 1, 2, 4) on the 3x3
    conv, halved in a dilated stage's first block. `sd`'s running statistics
    are updated in place in training mode."""
    def bn(t, k):
        return F.batch_norm(t, sd[k + ".running_mean"], sd[k + ".running_var"], sd[k + ".weight"], sd[k + ".bias"],
                            training=training, momentum=0.1, eps=1e-5)
    for i, stride in ((0, 2), (3, 1), (6, 1)):
        x = F.relu(bn(F.conv2d(x, sd[f"stem.{i}.weight"], stride=stride, padding=1), f"stem.{i + 1}"))
    x = F.max_pool2d(x, 3, 2, 1)
    outs = []
    for s, (n, stride, dil) in enumerate(zip(depths, (1, 2, 1, 1), (1, 1, 2, 4))):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            d = (dil // 2 if dil > 1 else dil) if b == 0 else dil
            st = stride if b == 0 else 1
            y = F.relu(bn(F.conv2d(x, sd[p + ".conv1.weight"]), p + ".bn1"))
            y = F.relu(bn(F.conv2d(y, sd[p + ".conv2.weight"], stride=st, padding=d, dilation=d), p + ".bn2"))
            y = bn(F.conv2d(y, sd[p + ".conv3.weight"]), p + ".bn3")
            short = x
            if p + ".downsample.0.weight" in sd:
                short = bn(F.conv2d(x, sd[p + ".downsample.0.weight"], stride=st), p + ".downsample.1")
            x = F.relu(y + short)
        outs.append(x)
    return outs


def verify_resnet():
    import json
    ck = load_file("Tests/ModelsTests/Golden/tiny_resnet_official.safetensors")
    G = load_file("Tests/ModelsTests/Golden/tiny_resnet_official_run.safetensors")
    meta = json.load(open("Tests/ModelsTests/Golden/tiny_resnet_official.json"))
    depths = meta["config"]["depths"]
    x = G["input.image_nhwc"].double().permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    sd = {k: v.double().clone() for k, v in ck.items() if v.is_floating_point() and not k.startswith("fc.")}
    with torch.no_grad():
        feats = resnet_d8_functional({k: v.clone() for k, v in sd.items()}, x, depths, training=False)
    for s in range(4):
        check(f"resnet feat.eval.{s}", feats[s].permute(0, 2, 3, 1), G[f"feat.eval.{s}"], 1e-6)
    params = {k: v.requires_grad_(True) for k, v in sd.items() if not k.endswith(("running_mean", "running_var"))}
    feats = resnet_d8_functional(sd, x, depths, training=True)
    loss = sum((f * G[f"upstream.{s}"].double().permute(0, 3, 1, 2)).sum() for s, f in enumerate(feats))
    loss.backward()
    for s in range(4):
        check(f"resnet feat.train.{s}", feats[s].detach().permute(0, 2, 3, 1), G[f"feat.train.{s}"], 1e-6)
    check("resnet grad.input", x.grad.permute(0, 2, 3, 1), G["grad.input.image_nhwc"], 1e-6)
    check("resnet grad.* (all)", torch.cat([params[k].grad.flatten() for k in sorted(params)]),
          torch.cat([G["grad." + k].double().flatten() for k in sorted(params)]), 1e-6)
    stats = sorted(k for k in sd if k.endswith(("running_mean", "running_var")))
    check("resnet running_after.* (all)", torch.cat([sd[k].flatten() for k in stats]),
          torch.cat([G["running_after." + k].double().flatten() for k in stats]), 1e-6)


if __name__ == "__main__":
    torch.set_num_threads(1)
    verify_ops()
    verify_adamw()
    verify_models()
    print("FAILED: " + ", ".join(FAIL) if FAIL else "all goldens verified")
    sys.exit(1 if FAIL else 0)
