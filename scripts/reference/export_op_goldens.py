"""Op goldens for the Swift Tensor layer.

  Tests/TensorTests/Golden/ops.safetensors   (+ ops.json: key list, shapes, attributes)

(The AdamW golden, Tests/NNTests/Golden/adamw.safetensors, is written by
nn_goldens.py only.)

Run from the repository root:  .venv/bin/python scripts/reference/export_op_goldens.py

Conventions (README.md has the full list):
  * every tensor is float32; inputs are drawn in float32, the op is evaluated
    in float64 and the results rounded to float32 (so a golden carries no
    float32 rounding of its own);
  * keys are `<op>.<role>`; roles: x (input), w/b (parameters), y (output),
    gy (upstream gradient, stored), gx/gw/gb (gradients of the inputs);
  * a 4-D image tensor is stored twice: `<key>_nchw` and `<key>_nhwc`;
    conv weights three times: `w_oihw` (PyTorch), `w_ohwi`, `w_hwio`;
  * integer data (targets, indices) is stored as float32 holding exact ints.
"""
from __future__ import annotations

import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecenet_ref as R  # noqa: E402
from st_util import save_deterministic  # noqa: E402

OPS_PATH = "Tests/TensorTests/Golden/ops.safetensors"

T: dict = {}
ATTRS: dict = {}
G = torch.Generator().manual_seed(1234)


def rnd(*shape, scale=1.0):
    """float32 draw, returned as float64 leaf that requires grad."""
    return (scale * torch.randn(*shape, generator=G)).to(torch.float32).double().requires_grad_(True)


def put(key: str, t: torch.Tensor, image: bool = False, conv_w: bool = False):
    t = t.detach().to(torch.float32).contiguous()
    if image:
        assert t.ndim == 4, key
        T[key + "_nchw"] = t.clone()
        T[key + "_nhwc"] = t.permute(0, 2, 3, 1).contiguous()
    elif conv_w:
        T[key + "_oihw"] = t.clone()
        T[key + "_ohwi"] = t.permute(0, 2, 3, 1).contiguous()
        T[key + "_hwio"] = t.permute(2, 3, 1, 0).contiguous()
    else:
        T[key] = t.clone()


def backward(y: torch.Tensor, inputs, scale=1.0):
    """Draw and return an upstream gradient gy, and d<y, gy>/d inputs."""
    gy = (scale * torch.randn(y.shape, generator=G)).to(torch.float32).double()
    grads = torch.autograd.grad(y, inputs, gy)
    return gy, grads


# ----------------------------------------------------------------------------
def op_linear():
    x, w, b = rnd(2, 3, 6), rnd(5, 6, scale=0.4), rnd(5, scale=0.1)
    y = F.linear(x, w, b)
    gy, (gx, gw, gb) = backward(y, (x, w, b))
    for k, v in dict(x=x, w=w, b=b, y=y, gy=gy, gx=gx, gw=gw, gb=gb).items():
        put(f"linear.{k}", v)
    ATTRS["linear"] = "y = x @ w^T + b; w is [out, in]"


def op_conv(name, x_shape, w_shape, stride, padding, dilation, groups=1, bias=True):
    x = rnd(*x_shape)
    w = rnd(*w_shape, scale=1.0 / math.sqrt(w_shape[1] * w_shape[2] * w_shape[3]))
    b = rnd(w_shape[0], scale=0.1) if bias else None
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    ins = (x, w) + ((b,) if bias else ())
    gy, grads = backward(y, ins)
    put(f"{name}.x", x, image=True)
    put(f"{name}.w", w, conv_w=True)
    put(f"{name}.y", y, image=True)
    put(f"{name}.gy", gy, image=True)
    put(f"{name}.gx", grads[0], image=True)
    put(f"{name}.gw", grads[1], conv_w=True)
    if bias:
        put(f"{name}.b", b)
        put(f"{name}.gb", grads[2])
    ATTRS[name] = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                       x=list(x_shape), w_oihw=list(w_shape), y_nchw=list(y.shape))


def op_layer_norm():
    x, w, b = rnd(2, 5, 10, scale=2.0), rnd(10, scale=0.1), rnd(10, scale=0.1)
    with torch.no_grad():
        x += 3.0                                   # a mean away from zero
        w += 1.0
    y = F.layer_norm(x, (10,), w, b, eps=1e-5)
    gy, (gx, gw, gb) = backward(y, (x, w, b))
    for k, v in dict(x=x, w=w, b=b, y=y, gy=gy, gx=gx, gw=gw, gb=gb).items():
        put(f"layer_norm.{k}", v)
    ATTRS["layer_norm"] = dict(normalized_shape=[10], eps=1e-5, var="biased")


def op_batch_norm():
    x, w, b = rnd(4, 6, 5, 3, scale=1.5), rnd(6, scale=0.1), rnd(6, scale=0.1)
    with torch.no_grad():
        x += torch.arange(6, dtype=x.dtype).view(1, 6, 1, 1)
        w += 1.0
    rm0 = (0.1 * torch.randn(6, generator=G)).float().double()
    rv0 = (1.0 + 0.2 * torch.rand(6, generator=G)).float().double()
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)
    gy, (gx, gw, gb) = backward(y, (x, w, b))
    y_eval = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5)
    put("batch_norm.x", x, image=True)
    put("batch_norm.y", y, image=True)
    put("batch_norm.gy", gy, image=True)
    put("batch_norm.gx", gx, image=True)
    put("batch_norm.y_eval", y_eval, image=True)
    for k, v in dict(w=w, b=b, gw=gw, gb=gb, running_mean_before=rm0, running_var_before=rv0,
                     running_mean_after=rm, running_var_after=rv).items():
        put(f"batch_norm.{k}", v)
    ATTRS["batch_norm"] = ("train mode: normalise with the biased batch variance over N,H,W; "
                           "running = (1-0.1)*running + 0.1*batch, running_var uses the unbiased "
                           "variance (n/(n-1)); eps 1e-5; y_eval uses running_*_after")


def op_group_norm():
    x, w, b = rnd(2, 8, 5, 3, scale=1.5), rnd(8, scale=0.1), rnd(8, scale=0.1)
    with torch.no_grad():
        w += 1.0
    y = F.group_norm(x, 4, w, b, eps=1e-5)
    gy, (gx, gw, gb) = backward(y, (x, w, b))
    for k in ("x", "y", "gy", "gx"):
        put(f"group_norm.{k}", dict(x=x, y=y, gy=gy, gx=gx)[k], image=True)
    for k, v in dict(w=w, b=b, gw=gw, gb=gb).items():
        put(f"group_norm.{k}", v)
    ATTRS["group_norm"] = dict(groups=4, eps=1e-5)


def op_pointwise():
    x = rnd(64, scale=3.0)
    y = F.gelu(x)
    gy, (gx,) = backward(y, (x,))
    for k, v in dict(x=x, y=y, gy=gy, gx=gx).items():
        put(f"gelu.{k}", v)
    ATTRS["gelu"] = "exact: 0.5 x (1 + erf(x / sqrt 2))"

    x = rnd(4, 7, scale=2.0)
    y = x.softmax(-1)
    gy, (gx,) = backward(y, (x,))
    for k, v in dict(x=x, y=y, gy=gy, gx=gx).items():
        put(f"softmax.{k}", v)
    y = x.log_softmax(-1)
    gy, (gx,) = backward(y, (x,))
    for k, v in dict(x=x, y=y, gy=gy, gx=gx).items():
        put(f"log_softmax.{k}", v)
    ATTRS["softmax"] = ATTRS["log_softmax"] = "over the last axis"


def op_losses():
    # pixel cross entropy, NCHW logits, ignore 255, mean over valid pixels
    x = rnd(2, 4, 5, 6, scale=2.0)
    t = torch.randint(0, 4, (2, 5, 6), generator=G)
    t[0, 0, :] = 255
    t[1, 2:4, 1:3] = 255
    loss = F.cross_entropy(x, t, ignore_index=255)
    gy = torch.tensor(0.7, dtype=torch.float64)
    (gx,) = torch.autograd.grad(loss, (x,), gy)
    put("cross_entropy.x", x, image=True)
    put("cross_entropy.gx", gx, image=True)
    put("cross_entropy.target", t.float())
    put("cross_entropy.y", loss.reshape(1))
    put("cross_entropy.gy", gy.reshape(1))
    ATTRS["cross_entropy"] = "mean over pixels whose target != 255; target [N,H,W] as float32"

    # weighted CE (the L_cls convention: sum w[t] ce / sum w[t])
    x = rnd(6, 5, scale=2.0)
    t = torch.tensor([0, 4, 2, 4, 1, 3])
    wt = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.1], dtype=torch.float64)
    loss = F.cross_entropy(x, t, weight=wt)
    (gx,) = torch.autograd.grad(loss, (x,), gy)
    for k, v in dict(x=x, gx=gx, target=t.float(), weight=wt, y=loss.reshape(1), gy=gy.reshape(1)).items():
        put(f"cross_entropy_weighted.{k}", v)
    ATTRS["cross_entropy_weighted"] = "sum_i weight[t_i] * ce_i / sum_i weight[t_i]"

    x = rnd(3, 20, scale=2.0)
    t = (torch.rand(3, 20, generator=G) < 0.3).double()
    loss = R.sigmoid_focal_per_mask(x, t, 0.25, 2.0).mean()
    (gx,) = torch.autograd.grad(loss, (x,), gy)
    for k, v in dict(x=x, target=t, y=loss.reshape(1), gy=gy.reshape(1), gx=gx).items():
        put(f"sigmoid_focal.{k}", v)
    ATTRS["sigmoid_focal"] = "torchvision sigmoid_focal_loss, alpha 0.25, gamma 2, mean over all elements"

    loss = R.dice_per_mask(x, t).mean()
    (gx,) = torch.autograd.grad(loss, (x,), gy)
    for k, v in dict(x=x, target=t, y=loss.reshape(1), gy=gy.reshape(1), gx=gx).items():
        put(f"dice.{k}", v)
    ATTRS["dice"] = "p = sigmoid(x); per row 1 - (2 sum p t + 1)/(sum p + sum t + 1); mean over rows"

    y2 = rnd(2, 4, 5, 3, scale=2.0)
    loss = R.diversity_loss_per_image(y2).mean()
    (gx,) = torch.autograd.grad(loss, (y2,), gy)
    put("diversity.x", y2, image=True)
    put("diversity.gx", gx, image=True)
    put("diversity.y", loss.reshape(1))
    put("diversity.gy", gy.reshape(1))
    ATTRS["diversity"] = "per image 1 - mean_c max_hw softmax_hw(x[c]); mean over images"


def op_resample():
    def img_op(name, x, fn, attrs):
        y = fn(x)
        gy, (gx,) = backward(y, (x,))
        for k, v in dict(x=x, y=y, gy=gy, gx=gx).items():
            put(f"{name}.{k}", v, image=True)
        ATTRS[name] = dict(attrs, x_nchw=list(x.shape), y_nchw=list(y.shape))

    img_op("bilinear_up2", rnd(2, 3, 5, 4),
           lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
           dict(mode="bilinear", align_corners=False, size=[10, 8]))
    img_op("bilinear_up4", rnd(1, 2, 4, 4),
           lambda x: F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False),
           dict(mode="bilinear", align_corners=False, size=[16, 16]))
    img_op("bilinear_down", rnd(2, 3, 9, 10),
           lambda x: F.interpolate(x, size=(5, 3), mode="bilinear", align_corners=False),
           dict(mode="bilinear", align_corners=False, size=[5, 3], antialias=False))
    img_op("nearest", rnd(2, 3, 4, 5),
           lambda x: F.interpolate(x, size=(9, 7), mode="nearest"),
           dict(mode="nearest (src = floor(dst * in / out))", size=[9, 7]))
    img_op("pixel_shuffle", rnd(2, 8, 3, 4), lambda x: F.pixel_shuffle(x, 2),
           dict(r=2, rule="y[n, c, h*r+i, w*r+j] = x[n, c*r*r + i*r + j, h, w]"))
    img_op("adaptive_avg_pool", rnd(2, 3, 7, 5), lambda x: F.adaptive_avg_pool2d(x, (3, 3)),
           dict(out=[3, 3], bins="start = floor(i*H/s), end = ceil((i+1)*H/s)"))
    img_op("adaptive_avg_pool_up", rnd(1, 2, 2, 2), lambda x: F.adaptive_avg_pool2d(x, (3, 3)),
           dict(out=[3, 3], note="output larger than input (overlapping 1-pixel bins)"))
    img_op("max_pool", rnd(2, 3, 9, 8), lambda x: F.max_pool2d(x, 3, 2, 1),
           dict(kernel=3, stride=2, padding=1, pad_value="-inf"))


def op_attention():
    # raw window attention: softmax(q k^T * d^-1/2 + bias[h] + mask[b]) v
    Bw, h, n, d = 4, 2, 16, 4
    q, k, v = rnd(Bw, h, n, d), rnd(Bw, h, n, d), rnd(Bw, h, n, d)
    bias = rnd(h, n, n, scale=0.5)
    mask = R.shift_attn_mask(8, 8, 4, 2).double()            # 4 windows of an 8x8 map
    a = (q * d ** -0.5) @ k.transpose(-2, -1) + bias.unsqueeze(0) + mask.unsqueeze(1)
    y = a.softmax(-1) @ v
    gy, (gq, gk, gv, gb) = backward(y, (q, k, v, bias))
    for kk, vv in dict(q=q, k=k, v=v, bias=bias, mask=mask, y=y, gy=gy, gq=gq, gk=gk, gv=gv,
                       gbias=gb).items():
        put(f"sdpa.{kk}", vv)
    ATTRS["sdpa"] = ("y = softmax(q k^T / sqrt(d) + bias[h] + mask[b]) v; q,k,v [B, heads, n, d]; "
                     "bias [heads, n, n]; mask [B, n, n] with 0 / -100")

    # Swin shifted-window attention sublayer (no LN, no residual) on 2x8x8x12
    torch.manual_seed(5)
    C, heads = 12, 2
    attn = R.WindowAttention(C, 4, heads).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_((0.3 * torch.randn(p.shape, generator=G)).float().double())
    x = rnd(2, 8, 8, C)

    def swin_attn(x):
        xs = torch.roll(x, (-2, -2), (1, 2))
        win = R.window_partition(xs, 4).view(-1, 16, C)
        win = attn(win, mask)
        return torch.roll(R.window_reverse(win.view(-1, 4, 4, C), 4, 8, 8), (2, 2), (1, 2))

    y = swin_attn(x)
    ps = dict(attn.named_parameters())
    gy, grads = backward(y, (x,) + tuple(ps.values()))
    to_nchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
    put("swin_wattn.x", to_nchw(x), image=True)
    put("swin_wattn.y", to_nchw(y), image=True)
    put("swin_wattn.gy", to_nchw(gy), image=True)
    put("swin_wattn.gx", to_nchw(grads[0]), image=True)
    for (name, p), gp in zip(ps.items(), grads[1:]):
        put(f"swin_wattn.{name}", p)
        put(f"swin_wattn.g_{name}", gp)
    put("swin_wattn.mask", mask)
    put("swin_wattn.relative_position_index", attn.relative_position_index.double())
    ATTRS["swin_wattn"] = ("roll by (-2,-2), 4x4 windows (row-major), WindowAttention(dim 12, 2 heads, "
                           "qkv/proj with bias, relative bias, shift mask), reverse, roll (+2,+2). "
                           "x/y are the token maps [B,H,W,C] = *_nhwc")

    # full Swin block with padding: 1x6x7x8 -> padded to 8x8, window 4, shift 2
    C = 8
    blk = R.SwinBlock(C, heads, 4, 2, 4.0, 0.0).double()
    with torch.no_grad():
        for name, p in blk.named_parameters():
            base = 1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0
            p.copy_((base + 0.3 * torch.randn(p.shape, generator=G)).float().double())
    x = rnd(1, 6 * 7, C)
    bmask = R.shift_attn_mask(8, 8, 4, 2).double()
    y = blk(x, 6, 7, bmask)
    ps = dict(blk.named_parameters())
    gy, grads = backward(y, (x,) + tuple(ps.values()))
    tok = lambda t: t.reshape(1, 6, 7, C).permute(0, 3, 1, 2)  # noqa: E731
    put("swin_block.x", tok(x), image=True)
    put("swin_block.y", tok(y), image=True)
    put("swin_block.gy", tok(gy), image=True)
    put("swin_block.gx", tok(grads[0]), image=True)
    for (name, p), gp in zip(ps.items(), grads[1:]):
        put(f"swin_block.{name}", p)
        put(f"swin_block.g_{name}", gp)
    put("swin_block.mask", bmask)
    ATTRS["swin_block"] = ("SwinBlock(dim 8, heads 2, window 4, shift 2) on H=6, W=7 (LN, zero pad to 8x8, "
                           "shifted window attention, crop, residual, LN, MLP 32 GELU, residual); "
                           "the token sequence [B, H*W, C] is x_nhwc flattened")


def export_ops():
    torch.manual_seed(0)
    op_linear()
    op_conv("conv3x3s2", (2, 3, 9, 8), (4, 3, 3, 3), 2, 1, 1)
    op_conv("conv3x3d2", (2, 3, 9, 8), (4, 3, 3, 3), 1, 2, 2)
    op_conv("patch_embed", (2, 3, 16, 12), (8, 3, 4, 4), 4, 0, 1)
    op_conv("conv1x1", (2, 8, 5, 4), (6, 8, 1, 1), 1, 0, 1, bias=False)
    op_conv("dwconv3x3", (2, 6, 7, 5), (6, 1, 3, 3), 1, 1, 1, groups=6)
    op_conv("fuse3x3", (1, 8, 6, 5), (4, 8, 3, 3), 1, 1, 1, bias=False)
    op_layer_norm()
    op_batch_norm()
    op_group_norm()
    op_pointwise()
    op_losses()
    op_resample()
    op_attention()
    os.makedirs(os.path.dirname(OPS_PATH), exist_ok=True)
    save_deterministic(T, OPS_PATH, metadata={"format": "pt", "generator": "scripts/reference/export_op_goldens.py"})
    back = load_file(OPS_PATH)
    assert set(back) == set(T) and all(torch.equal(back[k], T[k]) for k in T)
    with open(OPS_PATH.replace(".safetensors", ".json"), "w") as f:
        json.dump(dict(attrs=ATTRS, keys={k: list(v.shape) for k, v in sorted(T.items())}), f, indent=1)
    print(f"{OPS_PATH}: {len(T)} tensors, {os.path.getsize(OPS_PATH) / 1e3:.0f} kB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    export_ops()
