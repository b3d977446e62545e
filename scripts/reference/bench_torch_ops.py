#!/usr/bin/env python3
"""PyTorch CPU timings of the ops `ecenet-dist bench ops` times, same shapes.

Forward (under torch.no_grad) and forward+backward (gradients of every input,
a fixed seed gradient, .grad reset to None each repetition) of: linear (fc1, fc2,
qkv), 1x1 conv, the 3x3 fuse conv, depth-wise 3x3, window attention, LayerNorm,
GELU, softmax and BatchNorm (training mode) at Swin-B/640^2 batch-1 sizes.
Convolutions and BatchNorm run in NCHW and in channels_last and the faster is
reported (layout in the output); attention runs both as
F.scaled_dot_product_attention with a float mask and as official Swin's
explicit matmul/softmax/matmul, and the faster is reported.
Minimum over at least --reps repetitions after one warm-up (more for short ops). Prints one JSON object.

    .venv/bin/python scripts/reference/bench_torch_ops.py --threads 2 [--quick]
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F


def min_time(fn, reps):
    """Fastest run after a warm-up: at least `reps` runs, more (up to 30) while
    under half a second has been spent (same rule as `ecenet-dist bench ops`)."""
    fn()
    best, spent, n = float("inf"), 0.0, 0
    while n < reps or (spent < 0.5 and n < 30):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best, spent, n = min(best, t), spent + t, n + 1
    return best


def rnd(*shape, scale=1.0, grad=True, gen=None):
    t = (torch.rand(*shape, generator=gen) * 2 - 1) * scale
    return t.requires_grad_(grad)


def case_runner(inputs, fn, seed_shape, gen, to_layout=None):
    seed = rnd(*seed_shape, scale=0.01, grad=False, gen=gen)
    if to_layout is not None:
        seed = to_layout(seed)

    def fwd():
        with torch.no_grad():
            fn()

    def both():
        for v in inputs:
            v.grad = None
        y = fn()
        y.backward(seed)

    return fwd, both


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="stage-1 map 48x48 instead of 160x160")
    ap.add_argument("--only", default=None, help="only ops whose name contains this string")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    h1 = 48 if a.quick else 160
    c1 = 128
    rows = h1 * h1
    h3, c3 = (24 if a.quick else 40), 512
    win = 12
    cases = []  # (name, shape, [(variant, fwd, both)])

    def linear_case(name, in_f, out_f):
        x = rnd(rows, in_f, gen=gen)
        w, b = rnd(out_f, in_f, scale=0.05, gen=gen), rnd(out_f, scale=0.05, gen=gen)
        f, fb = case_runner([x, w, b], lambda: F.linear(x, w, b), (rows, out_f), gen)
        return (name, f"{rows}x{in_f}->{out_f}", [("", f, fb)])

    def conv_case(name, shape, ci, co, k, groups=1, wscale=0.05):
        variants = []
        for layout in ("nchw", "channels_last"):
            mf = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = rnd(1, ci, h1, h1, grad=False, gen=gen).contiguous(memory_format=mf).requires_grad_(True)
            w = rnd(co, ci // groups, k, k, scale=wscale, grad=False, gen=gen).contiguous(memory_format=mf).requires_grad_(True)
            b = rnd(co, scale=0.05, gen=gen)
            fn = (lambda x=x, w=w, b=b: F.conv2d(x, w, b, padding=k // 2, groups=groups))
            f, fb = case_runner([x, w, b], fn, (1, co, h1, h1), gen,
                                to_layout=lambda t, mf=mf: t.contiguous(memory_format=mf))
            variants.append((layout, f, fb))
        return (name, shape, variants)

    if not a.only or "linear" in a.only:
        cases.append(linear_case("linear fc1", c1, 4 * c1))
        cases.append(linear_case("linear qkv", c1, 3 * c1))
        cases.append(linear_case("linear fc2", 4 * c1, c1))
    cases.append(("conv1x1", None, lambda: conv_case("conv1x1", f"{h1}^2x{c1}->256", c1, 256, 1)))
    cases.append(("conv3x3 fuse", None, lambda: conv_case("conv3x3 fuse", f"{h1}^2x1024->256", 1024, 256, 3, wscale=0.01)))
    cases.append(("dwconv3x3", None, lambda: conv_case("dwconv3x3", f"{h1}^2x1024", 1024, 1024, 3, groups=1024)))

    def attention_case(name, m, channels):
        padded = (m + win - 1) // win * win
        nw = (padded // win) ** 2
        heads, d, L = channels // 32, 32, win * win
        q, k, v = (rnd(nw, heads, L, d, gen=gen) for _ in range(3))
        bias = rnd(heads, L, L, gen=gen)
        mask = torch.zeros(nw, L, L)
        half = torch.arange(L) < L // 2
        blk = (half[:, None] != half[None, :]).float() * -100
        mask[::3] = blk
        scale = d ** -0.5

        def sdpa():
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0) + mask.unsqueeze(1), scale=scale)

        def manual():  # official Swin WindowAttention
            s = (q * scale) @ k.transpose(-2, -1) + bias.unsqueeze(0) + mask.unsqueeze(1)
            return s.softmax(-1) @ v

        out = []
        for vname, fn in (("sdpa", sdpa), ("swin-manual", manual)):
            f, fb = case_runner([q, k, v, bias], fn, (nw, heads, L, d), gen)
            out.append((vname, f, fb))
        return (name, f"{nw}w x{heads}h x{L}^2 x{d}", out)

    cases.append(("attention s1", None, lambda: attention_case("attention s1", h1, c1)))
    cases.append(("attention s3", None, lambda: attention_case("attention s3", h3, c3)))

    def layernorm():
        x = rnd(rows, c1, gen=gen)
        w, b = rnd(c1, scale=0.05, gen=gen), rnd(c1, scale=0.05, gen=gen)
        f, fb = case_runner([x, w, b], lambda: F.layer_norm(x, (c1,), w, b), (rows, c1), gen)
        return ("layernorm", f"{rows}x{c1}", [("", f, fb)])

    def gelu():
        x = rnd(rows, 4 * c1, gen=gen)
        f, fb = case_runner([x], lambda: F.gelu(x), (rows, 4 * c1), gen)
        return ("gelu", f"{rows}x{4 * c1}", [("", f, fb)])

    def add():
        # a Swin block's residual add at stage 1: x + branch, both [tokens, C]
        x, y = rnd(rows, c1, gen=gen), rnd(rows, c1, gen=gen)
        f, fb = case_runner([x, y], lambda: x + y, (rows, c1), gen)
        return ("add", f"{rows}x{c1}", [("", f, fb)])

    def softmax():
        nw, heads, L = ((h1 + win - 1) // win) ** 2, c1 // 32, win * win
        x = rnd(nw * heads * L, L, scale=4, gen=gen)
        f, fb = case_runner([x], lambda: x.softmax(-1), (nw * heads * L, L), gen)
        return ("softmax", f"{nw * heads * L}x{L}", [("", f, fb)])

    def batchnorm(then_relu=False):
        # then_relu: mmseg's ConvModule order, BN then ReLU (eager PyTorch runs two ops).
        c = 256
        variants = []
        for layout in ("nchw", "channels_last"):
            mf = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = rnd(1, c, h1, h1, grad=False, gen=gen).contiguous(memory_format=mf).requires_grad_(True)
            w, b = rnd(c, scale=0.05, gen=gen), rnd(c, scale=0.05, gen=gen)
            rm, rv = torch.zeros(c), torch.ones(c)
            fn = (lambda x=x, w=w, b=b, rm=rm, rv=rv: F.batch_norm(x, rm, rv, w, b, training=True))
            if then_relu:
                fn = (lambda bn=fn: F.relu(bn()))
            f, fb = case_runner([x, w, b], fn, (1, c, h1, h1), gen,
                                to_layout=lambda t, mf=mf: t.contiguous(memory_format=mf))
            variants.append((layout, f, fb))
        return ("batchnorm+relu" if then_relu else "batchnorm", f"{h1}^2x{c}", variants)

    cases += [("layernorm", None, layernorm), ("gelu", None, gelu), ("add", None, add), ("softmax", None, softmax),
              ("batchnorm", None, batchnorm), ("batchnorm+relu", None, lambda: batchnorm(then_relu=True))]

    results = []
    for item in cases:
        name = item[0]
        if a.only and a.only not in name:
            continue
        if item[1] is None:  # built lazily, so big inputs live one case at a time
            name, shape, variants = item[2]()
        else:
            name, shape, variants = item
        for pass_name, idx in (("fwd", 1), ("fwd+bwd", 2)):
            timed = [(min_time(v[idx], a.reps), v[0]) for v in variants]
            t, which = min(timed)
            r = {"op": name, "shape": shape, "pass": pass_name, "ms": t * 1e3, "variant": which}
            if len(timed) > 1:
                r["all_ms"] = {w: s * 1e3 for s, w in timed}
            results.append(r)
        del variants

    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "quick": a.quick, "reps": a.reps,
        "mkldnn": torch.backends.mkldnn.is_available(),
        # PyTorch's allocator advises huge pages only when this is 1 (bench.sh sets it to match ours).
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
        "ops": results,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
