"""Writes the model goldens of ecenet-dist (see README.md in this folder).

  Tests/ModelsTests/Golden/tiny_ecenet.safetensors (+ tiny_ecenet.json)
  Tests/ModelsTests/Golden/tiny_swin_official.safetensors
  Tests/ModelsTests/Golden/tiny_swin_official_import.safetensors
  Tests/ModelsTests/Golden/tiny_swin_shift.safetensors (+ .json)
  Tests/ModelsTests/Golden/tiny_resnet_official.safetensors (+ _run.safetensors, .json)

Run from the repository root:  .venv/bin/python scripts/reference/export_goldens.py
Deterministic (fixed seeds, single thread); takes a few seconds on one core.
Weights and inputs are drawn in float32 and stored exactly; the forward and
backward run in float64 and every result is rounded to float32 when stored,
so a golden carries no float32 accumulation error of its own.

The ECENet golden is the spec's tiny preset made narrower so that it stays a
small committed file (defaults --embed 8 --channels 16 --depths 2,2,1,1
--ecenet-seed 1; 2.4 MB instead of 14 MB for embed 32 / C 32). Its metadata
records the model (config_record), which the Swift tests build from.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecenet_ref as R  # noqa: E402
from st_util import save_deterministic  # noqa: E402

GOLDEN = "Tests/ModelsTests/Golden"


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """NCHW -> NHWC (contiguous)."""
    return t.permute(0, 2, 3, 1).contiguous()


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous().clone()


def swift_config(cfg: R.ECENetConfig) -> dict:
    """The model configuration under the dotted snake_case keys of
    Sources/Models/Config.swift (`ModelConfig.settings`): what the Swift tests
    compare their model's config against, key by key."""
    s = cfg.swin
    assert float(s.mlp_ratio).is_integer() and s.in_chans == 3
    return {
        "backbone.embed_dim": s.embed_dim, "backbone.depths": list(s.depths), "backbone.heads": list(s.num_heads),
        "backbone.window": s.window_size, "backbone.drop_path": s.drop_path_rate,
        "backbone.mlp_ratio": int(s.mlp_ratio), "backbone.patch_size": s.patch_size,
        "num_classes": cfg.num_classes, "channels": cfg.channels, "alpha": cfg.alpha, "sau_heads": cfg.sau_heads,
        "norm": cfg.norm, "updater": cfg.updater, "dropout": cfg.dropout, "pretrained": "",
        "loss.seg": cfg.w_seg, "loss.cls": cfg.w_cls, "loss.focal": cfg.w_focal, "loss.dice": cfg.w_dice,
        "loss.div": cfg.w_div, "loss.eos_coef": cfg.eos_coef, "loss.focal_alpha": cfg.focal_alpha,
        "loss.focal_gamma": cfg.focal_gamma, "loss.ignore_index": cfg.ignore_index,
    }


def small_config(embed: int, channels: int, depths, dropout: float = 0.0, **over) -> R.ECENetConfig:
    """The spec's "tiny" preset with a narrower Swin (embed), head (C) and
    other depths: the goldens' model, small enough to commit."""
    cfg = R.tiny_config(dropout=dropout, **over)
    cfg.swin.embed_dim, cfg.channels, cfg.swin.depths = embed, channels, tuple(depths)
    return cfg


def add_small_model_args(ap: argparse.ArgumentParser, depths, what: str = "", depths_note: str = "") -> None:
    """--embed, --channels, --depths of `small_config` (defaults embed 8, C 16)."""
    ap.add_argument("--embed", type=int, default=8, help=f"Swin embed dim{what} (spec tiny: 32)")
    ap.add_argument("--channels", type=int, default=16, help=f"head width C{what} (spec tiny: 32)")
    ap.add_argument("--depths", type=lambda s: [int(x) for x in s.split(",")], default=list(depths),
                    help=f"Swin blocks per stage{what} (spec tiny: 1,1,1,1{depths_note})")


def config_record(cfg: R.ECENetConfig) -> dict:
    """What a golden records about its model (safetensors metadata and JSON
    sidecar): `model_overrides`, the keys in which it differs from
    `ModelConfig.preset("tiny")` (the Swift tests apply these to that preset);
    `model_config`, every key (the Swift tests check their config against it,
    so golden and test cannot disagree silently); `reference_config`, the
    ecenet_ref.ECENetConfig (config_from_record rebuilds it)."""
    full, preset = swift_config(cfg), swift_config(R.tiny_config())
    overrides = {k: v for k, v in full.items() if v != preset[k]}
    return {"model_overrides": json.dumps(overrides, sort_keys=True),
            "model_config": json.dumps(full, sort_keys=True),
            "reference_config": json.dumps(cfg.to_dict(), sort_keys=True)}


def config_from_record(meta: dict) -> R.ECENetConfig:
    """The ecenet_ref config a golden was exported with (its metadata)."""
    d = json.loads(meta["reference_config"])
    swin = d.pop("swin")
    swin["depths"], swin["num_heads"] = tuple(swin["depths"]), tuple(swin["num_heads"])
    return R.ECENetConfig(swin=R.SwinConfig(**swin), **d)


def perturb_(model: torch.nn.Module, g: torch.Generator):
    """Make every parameter non-trivial so that no gradient test passes by
    accident: norm weights 1 + 0.1 n, every bias (and norm bias) 0.05 n."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            is_norm = isinstance(owner, (torch.nn.LayerNorm, torch.nn.BatchNorm2d, torch.nn.GroupNorm))
            if is_norm and leaf == "weight":
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif leaf == "bias":
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
                if name.endswith("se.fc1.bias"):
                    p.add_(0.2)   # otherwise all four SE units of stage 0 are dead (ReLU < 0)


def make_inputs(g: torch.Generator, B=2, H=64, W=64, N=5):
    """Raw RGB in [0, 255] (integers), its normalisation, and a label map with
    255 pixels where class 3 is absent from image 1."""
    raw = torch.randint(0, 256, (B, 3, H, W), generator=g).float()
    # smooth a little so that the image is not pure noise
    raw = torch.round(F.avg_pool2d(F.pad(raw, (1, 1, 1, 1), mode="replicate"), 3, 1))
    img = R.normalize_image(raw)
    coarse = torch.randint(0, N, (B, H // 8, W // 8), generator=g)
    coarse[0, 0, :N] = torch.arange(N)                 # image 0: every class present
    coarse[1][coarse[1] == 3] = 4                      # image 1: class 3 absent
    label = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2).clone()
    label[:, H - 3:, :] = 255                          # ignored bottom rows
    label[0, 10:20, 30:45] = 255                       # an ignored block
    label[1, :, :2] = 255
    return raw, img, label


def forward_backward(model, cfg, img, label):
    model.zero_grad(set_to_none=True)
    out = model(img)
    losses = R.loss_terms(out, label, cfg)
    losses["total"].backward()
    return out, losses


def export_swin_shift(args):
    """Backbone alone with two blocks per stage (so shifted windows and their
    mask run), on a 40x56 input: every stage is padded to a window multiple
    and two merges see odd sizes (5x7 -> 3x4).  Loss = sum_s <feat_s, w_s>
    with stored random w_s (= the upstream gradients of the features)."""
    torch.manual_seed(args.seed + 3)
    cfg = R.SwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4)
    bb = R.SwinTransformer(cfg)
    g = torch.Generator().manual_seed(args.seed + 4)
    perturb_(bb, g)
    with torch.no_grad():
        for name, p in bb.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    raw = torch.round(torch.rand(2, 3, 40, 56, generator=g) * 255)
    x = R.normalize_image(raw).double().requires_grad_(True)
    params0 = {k: f32(v) for k, v in bb.state_dict().items()}
    bb.double()
    feats = bb(x)
    ws = [torch.randn(f.shape, generator=g).double() for f in feats]
    loss = sum((f * w).sum() for f, w in zip(feats, ws))
    loss.backward()
    T = {"param." + k: v for k, v in params0.items()}
    T.update({"grad." + k: f32(p.grad) for k, p in bb.named_parameters()})
    T["input.image_nhwc"] = nhwc(f32(x))
    T["grad.input.image_nhwc"] = nhwc(f32(x.grad))
    for s in range(4):
        T[f"feat.backbone.{s}"] = nhwc(f32(feats[s]))
        T[f"upstream.backbone.{s}"] = nhwc(f32(ws[s]))
    for s in range(4):
        Hp = -(-feats[s].shape[2] // 4) * 4
        Wp = -(-feats[s].shape[3] // 4) * 4
        T[f"buf.attn_mask.{s}"] = R.shift_attn_mask(Hp, Wp, 4, 2)
    T["loss"] = f32(loss).reshape(1)
    path = os.path.join(GOLDEN, "tiny_swin_shift.safetensors")
    save_deterministic(T, path, metadata={"format": "pt"})
    back = load_file(path)
    assert set(back) == set(T) and all(torch.equal(back[k], T[k]) for k in T)
    with open(os.path.join(GOLDEN, "tiny_swin_shift.json"), "w") as f:
        json.dump(dict(config=cfg.__dict__, input_nchw=list(x.shape), loss=loss.item(),
                       feat_shapes_nhwc=[list(T[f"feat.backbone.{s}"].shape) for s in range(4)],
                       keys={k: list(v.shape) for k, v in sorted(T.items())}), f, indent=1)
    print(f"{path}: {len(T)} tensors, {os.path.getsize(path) / 1e6:.2f} MB, loss {loss.item():.6f}")


def export_tiny_ecenet(args):
    torch.manual_seed(args.ecenet_seed)
    cfg = small_config(args.embed, args.channels, args.depths)
    model = R.ECENet(cfg).train()           # BN in train mode (batch statistics)
    g = torch.Generator().manual_seed(args.ecenet_seed + 1)
    perturb_(model, g)
    raw, img, label = make_inputs(g, N=cfg.num_classes)

    params0 = {k: f32(v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    # float32 weights and inputs, evaluated in float64, results rounded to float32
    model.double()
    img = img.double().requires_grad_(True)
    out, losses = forward_backward(model, cfg, img, label)
    T = {"grad.input.image_nhwc": nhwc(f32(img.grad))}
    img = img.detach()
    for k, v in params0.items():
        T["param." + k] = v
    for k, v in model.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            T["state_after." + k] = f32(v)
    for k, b in model.named_buffers():
        if k.endswith("relative_position_index"):
            T["buf." + k] = f32(b)
    for k, p in model.named_parameters():
        T["grad." + k] = f32(p.grad)

    T["input.image"] = f32(img)
    T["input.image_nhwc"] = nhwc(f32(img))
    T["input.image_raw_nhwc"] = nhwc(raw)
    T["input.label"] = f32(label)
    for name in ("logits", "logits_up"):
        T[f"out.{name}"] = f32(out[name])
        T[f"out.{name}_nhwc"] = nhwc(f32(out[name]))
    T["out.class_logits"] = f32(out["class_logits"])
    T["out.class_probs"] = f32(out["class_probs"])
    T["out.mask_sum_nhwc"] = nhwc(f32(out["mask_sum"]))
    for k, v in losses.items():
        T[f"loss.{k}"] = f32(v).reshape(1)
    T["loss.div_per_stage"] = torch.stack([R.diversity_loss_per_image(y).mean() for y in out["fr_ydd"]]).detach()

    for s in range(4):
        T[f"feat.backbone.{s}"] = nhwc(f32(out["feats"][s]))
        T[f"feat.fr.{s}"] = nhwc(f32(out["fr_x"][s]))
        T[f"feat.fr_y.{s}"] = nhwc(f32(out["fr_y"][s]))
        T[f"feat.fr_ydd.{s}"] = nhwc(f32(out["fr_ydd"][s]))
    T["feat.mask.init"] = nhwc(f32(out["masks"][0]))
    T["feat.ece_pool.init"] = f32(model.head.ece[0].pool(out["masks"][0]))
    for j in range(3):
        T[f"feat.mask.sau.{j}"] = nhwc(f32(out["masks"][j + 1]))
        T[f"feat.sau_x.{j}"] = nhwc(f32(out["sau_x"][j]))
        T[f"feat.up.{j}"] = nhwc(f32(out["ups"][j]))
    for k in range(4):
        T[f"feat.class_emb.{k}"] = f32(out["class_emb"][k])
    T["feat.fused"] = nhwc(f32(out["fused"]))
    T["feat.logits_conv"] = nhwc(f32(out["logits_conv"]))
    present = torch.stack([(label == n).flatten(1).any(1) for n in range(cfg.num_classes)], 1)
    T["meta.present"] = present.float()
    with torch.no_grad():   # no SE unit dead or within float32 noise of its ReLU kink
        for s, fr in enumerate(model.head.fr):
            h = fr.se.fc1(fr.cheap(fr.primary(out["feats"][s])).mean((2, 3)))
            assert (h > 0).any(), f"stage {s}: every SE unit is dead"
            assert h.abs().min() > 1e-3, f"stage {s}: SE pre-activation {h.abs().min():.2e} near 0"

    # Variants on the same weights: GroupNorm head, and the "plus" updater.
    variants = {}
    for vname, over in (("gn", dict(norm="gn")), ("plus", dict(updater="plus"))):
        vcfg = small_config(args.embed, args.channels, args.depths, **over)
        vm = R.ECENet(vcfg).train().double()
        sd = {k: v for k, v in params0.items() if k in vm.state_dict()}
        missing, unexpected = vm.load_state_dict({k: v.double() for k, v in sd.items()}, strict=False)
        assert not [k for k in missing if "running" not in k], missing
        vout, vl = forward_backward(vm, vcfg, img, label)
        for k, v in vl.items():
            T[f"variant.{vname}.loss.{k}"] = f32(v).reshape(1)
        T[f"variant.{vname}.out.logits_nhwc"] = nhwc(f32(vout["logits"]))
        variants[vname] = {k: v.item() for k, v in vl.items()}

    path = os.path.join(GOLDEN, f"{args.name}.safetensors")
    record = config_record(cfg)
    save_deterministic(T, path, metadata={"format": "pt", "generator": "scripts/reference/export_goldens.py", **record})
    back = load_file(path)
    assert set(back) == set(T) and all(torch.equal(back[k], T[k]) for k in T)

    side = dict(
        config=cfg.to_dict(), model_overrides=json.loads(record["model_overrides"]),
        model_config=json.loads(record["model_config"]), ece_levels=R.ece_levels(cfg.num_classes, cfg.alpha),
        input=dict(shape_nchw=list(img.shape), normalisation=dict(mean=R.IMG_MEAN, std=R.IMG_STD),
                   note="input.image = (raw - mean) / std per RGB channel; raw integers in [0,255]"),
        mode="train (BatchNorm uses batch statistics, momentum 0.1, eps 1e-5); dropout p=0; drop_path 0",
        seed=args.ecenet_seed, torch=torch.__version__,
        losses={k: v.item() for k, v in losses.items()},
        loss_weights=dict(seg=cfg.w_seg, cls=cfg.w_cls, focal=cfg.w_focal, dice=cfg.w_dice, div=cfg.w_div),
        variants=variants,
        present=present.int().tolist(),
        num_params=R.count_params(model),
        keys={k: list(v.shape) for k, v in sorted(T.items())},
    )
    with open(os.path.join(GOLDEN, f"{args.name}.json"), "w") as f:
        json.dump(side, f, indent=1)
    print(f"{path}: {len(T)} tensors, {os.path.getsize(path) / 1e6:.2f} MB")
    print("losses", side["losses"])
    print("variants", variants)


def official_layout(bb: R.SwinTransformer, num_classes: int, pretrain_img: int, g: torch.Generator):
    """State dict of an official Swin *classifier* (microsoft/Swin-Transformer
    `model` dict): backbone keys without prefix, persistent
    relative_position_index (int64) in every block, attn_mask (float32,
    [nW, w*w, w*w], 0/-100) in the shifted blocks of the stages whose
    resolution at `pretrain_img` exceeds the window (the classifier does not
    shift when the map is no larger than the window), and the final `norm`
    and `head` instead of the segmentation model's norm0..3."""
    sd = {}
    for k, v in bb.state_dict().items():
        if k.startswith("norm"):
            continue
        sd[k] = v.clone()
    ws = bb.cfg.window_size
    for s, layer in enumerate(bb.layers):
        res = pretrain_img // bb.cfg.patch_size // 2 ** s
        for b, blk in enumerate(layer.blocks):
            sd[f"layers.{s}.blocks.{b}.attn.relative_position_index"] = blk.attn.relative_position_index.clone()
            if b % 2 == 1 and res > ws:
                sd[f"layers.{s}.blocks.{b}.attn_mask"] = R.shift_attn_mask(res, res, ws, ws // 2)
    C = bb.num_features[-1]
    sd["norm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    sd["norm.bias"] = 0.05 * torch.randn(C, generator=g)
    sd["head.weight"] = 0.02 * torch.randn(num_classes, C, generator=g)
    sd["head.bias"] = torch.zeros(num_classes)
    return dict(sorted(sd.items()))


SWIN_MICRO = dict(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


def export_swin_official(args):
    """A window-7 'pretrained' (224 px) official-layout checkpoint of a micro
    Swin (embed 8, depths 2,2,2,2, heads 1,2,2,4), imported into the same
    Swin with window 4, as the Swift importer must do."""
    g = torch.Generator().manual_seed(args.seed + 7)
    torch.manual_seed(args.seed + 7)
    pre_cfg = R.SwinConfig(**SWIN_MICRO, window_size=7)
    pre = R.SwinTransformer(pre_cfg)
    perturb_(pre, g)
    with torch.no_grad():    # tables with a visible shape, so that resizing matters
        for name, p in pre.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(torch.randn(p.shape, generator=g))
    ck = official_layout(pre, 10, 224, g)
    path = os.path.join(GOLDEN, "tiny_swin_official.safetensors")
    save_deterministic({k: v.contiguous() for k, v in ck.items()}, path, metadata={"format": "pt"})
    back = load_file(path)
    assert set(back) == set(ck) and all(torch.equal(back[k], ck[k]) for k in ck)

    # Import into the micro backbone with window 4, as the Swift importer must.
    model_cfg = R.SwinConfig(**SWIN_MICRO, window_size=4)
    torch.manual_seed(0)
    bb = R.SwinTransformer(model_cfg).double()     # resize and run in float64
    loaded, skipped, missing = R.load_official_swin(
        bb, {k: v.double() if v.is_floating_point() else v for k, v in back.items()})
    assert sorted(missing) == sorted(f"norm{i}.{w}" for i in range(4) for w in ("weight", "bias")), missing
    x_raw = torch.round(torch.rand(1, 3, 32, 32, generator=g) * 255)
    x = R.normalize_image(x_raw)
    with torch.no_grad():
        feats = bb(x.double())
    T = {}
    for k in loaded:
        if k.endswith("relative_position_bias_table"):
            T["interp." + k] = f32(bb.state_dict()[k])
    T["input.image"] = f32(x)
    T["input.image_nhwc"] = nhwc(f32(x))
    for s in range(4):
        T[f"feat.backbone.{s}"] = nhwc(f32(feats[s]))
    path2 = os.path.join(GOLDEN, "tiny_swin_official_import.safetensors")
    save_deterministic(T, path2, metadata={"format": "pt"})
    back2 = load_file(path2)
    assert all(torch.equal(back2[k], T[k]) for k in T)
    with open(os.path.join(GOLDEN, "tiny_swin_official.json"), "w") as f:
        json.dump(dict(pretrain_config=pre_cfg.__dict__, model_config=model_cfg.__dict__,
                       pretrain_img=224, classifier_classes=10, loaded=sorted(loaded), skipped=sorted(skipped),
                       kept_init=sorted(missing),
                       note="norm0..3 keep their init (weight 1, bias 0); tables resized bicubic "
                            "(align_corners=False) from 13x13 to 7x7 per head"), f, indent=1)
    print(f"{path}: {len(ck)} tensors, {os.path.getsize(path) / 1e6:.2f} MB; "
          f"{path2}: {len(T)} tensors; skipped {len(skipped)} keys")


RESNET_MICRO = dict(depths=(1, 1, 2, 1), stem_channels=8, base_channels=4)


def export_resnet_official(args):
    """A micro ResNetV1c-D8 (depths 1,1,2,1, stem 8, base 4) as an ImageNet
    classifier checkpoint in mmcv's layout (open-mmlab://resnet101_v1c: keys
    without prefix, BatchNorm running stats and num_batches_tracked, the `fc`
    classifier), and its backbone run in float64 on a 36x44 input (odd sizes
    at every stride): in training mode (batch statistics; loss = sum_s
    <feat_s, w_s> with stored random w_s; input and parameter gradients; the
    running stats after that step) and in eval mode (the file's running stats)."""
    import copy
    g = torch.Generator().manual_seed(args.seed + 11)
    torch.manual_seed(args.seed + 11)
    cfg = R.ResNetConfig(**RESNET_MICRO)
    bb = R.ResNetV1c(cfg)
    perturb_(bb, g)
    with torch.no_grad():
        for m in bb.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(1000)
    ck = {k: v.clone() for k, v in bb.state_dict().items()}
    C = 4 * (cfg.base_channels << 3)
    ck["fc.weight"] = 0.02 * torch.randn(10, C, generator=g)
    ck["fc.bias"] = torch.zeros(10)
    ck = dict(sorted(ck.items()))
    path = os.path.join(GOLDEN, "tiny_resnet_official.safetensors")
    save_deterministic({k: v.contiguous() for k, v in ck.items()}, path, metadata={"format": "pt"})
    back = load_file(path)
    assert set(back) == set(ck) and all(torch.equal(back[k], ck[k]) for k in ck)

    raw = torch.round(torch.rand(2, 3, 36, 44, generator=g) * 255)
    x = R.normalize_image(raw).double().requires_grad_(True)
    train = copy.deepcopy(bb).double().train()
    feats = train(x)
    ws = [torch.randn(f.shape, generator=g).double() for f in feats]
    loss = sum((f * w).sum() for f, w in zip(feats, ws))
    loss.backward()
    evaluated = copy.deepcopy(bb).double().eval()
    with torch.no_grad():
        feats_eval = evaluated(x.detach())
    T = {"input.image_nhwc": nhwc(f32(x)), "grad.input.image_nhwc": nhwc(f32(x.grad)), "loss": f32(loss).reshape(1)}
    for s in range(4):
        T[f"feat.train.{s}"] = nhwc(f32(feats[s]))
        T[f"upstream.{s}"] = nhwc(f32(ws[s]))
        T[f"feat.eval.{s}"] = nhwc(f32(feats_eval[s]))
    T.update({"grad." + k: f32(p.grad) for k, p in train.named_parameters()})
    T.update({"running_after." + k: f32(v) for k, v in train.state_dict().items() if k.endswith(("running_mean", "running_var"))})
    path2 = os.path.join(GOLDEN, "tiny_resnet_official_run.safetensors")
    save_deterministic(T, path2, metadata={"format": "pt"})
    back2 = load_file(path2)
    assert all(torch.equal(back2[k], T[k]) for k in T)
    skipped = [k for k in ck if k.startswith("fc.") or k.endswith("num_batches_tracked")]
    with open(os.path.join(GOLDEN, "tiny_resnet_official.json"), "w") as f:
        json.dump(dict(config=cfg.__dict__, input_nchw=list(x.shape), loss=loss.item(),
                       loaded=sorted(k for k in ck if k not in skipped), skipped=sorted(skipped),
                       feat_shapes_nhwc=[list(T[f"feat.train.{s}"].shape) for s in range(4)],
                       note="BatchNorm momentum 0.1, eps 1e-5; running_after = the running stats after the "
                            "training-mode forward (unbiased variance)"), f, indent=1)
    print(f"{path}: {len(ck)} tensors, {os.path.getsize(path) / 1e6:.2f} MB; "
          f"{path2}: {len(T)} tensors, {os.path.getsize(path2) / 1e6:.2f} MB, loss {loss.item():.6f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0, help="seed of the Swin goldens")
    ap.add_argument("--ecenet-seed", type=int, default=1,
                    help="seed of the ECENet golden (with 0 the single SE unit of stage 0 is dead at embed 8)")
    add_small_model_args(ap, [2, 2, 1, 1], " of the ECENet golden", "; 2 = a shifted block")
    ap.add_argument("--name", default="tiny_ecenet", help="file stem of the ECENet golden")
    ap.add_argument("--only-ecenet", action="store_true", help="skip the backbone goldens")
    ap.add_argument("--only-resnet", action="store_true", help="only the ResNet golden")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(GOLDEN, exist_ok=True)
    if args.only_resnet:
        export_resnet_official(args)
        return
    export_tiny_ecenet(args)
    if not args.only_ecenet:
        export_swin_shift(args)
        export_swin_official(args)
        export_resnet_official(args)


if __name__ == "__main__":
    main()
