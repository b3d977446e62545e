#!/usr/bin/env python3
"""Convert an ImageNet backbone checkpoint (.pth) into a safetensors file
with the keys unchanged, for `model.pretrained`:

  * an official Swin Transformer (microsoft/Swin-Transformer: the state dict
    is the 'model' entry);
  * mmcv's ResNetV1c for the ResNet-D8 backbone (open-mmlab://resnet50_v1c,
    resnet101_v1c: the state dict is the 'state_dict' entry, found when there
    is no 'model' entry).

    .venv/bin/python scripts/convert_swin.py swin_base_patch4_window12_384_22k.pth \
        weights/swin_base_patch4_window12_384_22k.safetensors
    .venv/bin/python scripts/convert_swin.py resnet101_v1c-e67eebb6.pth weights/resnet101_v1c.safetensors

Floating tensors are written as float32 (little endian); integer buffers such
as relative_position_index keep their dtype (I64) so the file is a faithful
copy; the Swift importer skips relative_position_index, attn_mask, norm.* and
head.*, the ResNet importer fc.* and num_batches_tracked.  The load uses
torch.load(weights_only=True): no pickled code runs.
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
    if isinstance(ck, dict) and key not in ck and "state_dict" in ck:
        key = "state_dict"                   # mmcv's checkpoints (ResNetV1c)
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
    ap.add_argument("--key", default="model",
                    help="entry holding the state dict (default: model, else state_dict)")
    a = ap.parse_args()
    n = convert(a.src, a.dst, a.key)
    print(f"convert_swin: wrote {n} tensors to {a.dst}")


if __name__ == "__main__":
    main()
