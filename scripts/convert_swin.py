#!/usr/bin/env python3
"""Convert an official Swin Transformer checkpoint (.pth, a dict whose 'model'
entry is the state dict, as released by microsoft/Swin-Transformer) into a
safetensors file with the keys unchanged.

    .venv/bin/python scripts/convert_swin.py swin_base_patch4_window12_384_22k.pth \
        weights/swin_base_patch4_window12_384_22k.safetensors

Floating tensors are written as float32 (little endian); integer buffers such
as relative_position_index keep their dtype (I64) so the file is a faithful
copy; the Swift importer skips relative_position_index, attn_mask, norm.* and
head.*.  The load uses torch.load(weights_only=True): no pickled code runs.
"""
import argparse
import sys

import torch
from safetensors.torch import save_file, load_file


def convert(src: str, dst: str, key: str = "model") -> int:
    try:
        ck = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # e.g. a training checkpoint that pickles a config object
        raise SystemExit(f"convert_swin: {src} does not load with weights_only=True ({e}); "
                         "re-save its state dict alone (torch.save({'model': sd}, ...)) in a trusted session")
    sd = ck[key] if isinstance(ck, dict) and key in ck else ck
    if not isinstance(sd, dict):
        raise SystemExit(f"{src}: no state dict under '{key}'")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            print(f"convert_swin: skipping non-tensor entry {k}", file=sys.stderr)
            continue
        v = v.detach()
        if v.is_floating_point():
            v = v.to(torch.float32)
        out[k] = v.contiguous().clone()      # no shared storage in safetensors
    save_file(out, dst, metadata={"format": "pt", "source": src.rsplit("/", 1)[-1]})
    back = load_file(dst)
    assert set(back) == set(out) and all(torch.equal(back[k], out[k]) for k in out)
    return len(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="official .pth checkpoint")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--key", default="model", help="entry holding the state dict (default: model)")
    a = ap.parse_args()
    n = convert(a.src, a.dst, a.key)
    print(f"convert_swin: wrote {n} tensors to {a.dst}")


if __name__ == "__main__":
    main()
