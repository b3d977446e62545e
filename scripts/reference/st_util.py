"""Byte-reproducible safetensors writing.

safetensors.torch.save_file lays the data out deterministically but may emit
the JSON header's keys in a different order from one process to the next.
save_deterministic rewrites the header with sorted keys (same content, same
length, space padded as the format allows) so that a re-export is
byte-identical, then checks that the file loads back unchanged."""
import json
import os
import struct

import torch
from safetensors.torch import save_file, load_file


def sort_header(path):
    """Rewrites a safetensors file's JSON header with sorted keys, in place
    (same content and length; any writer, e.g. safetensors.numpy)."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        assert len(text) <= n, "sorted header longer than the original"
        f.seek(8)
        f.write(text + b" " * (n - len(text)))
    os.chmod(path, 0o644)


def save_deterministic(tensors, path, metadata=None):
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, path, metadata=metadata)
    sort_header(path)
    back = load_file(path)
    assert set(back) == set(tensors), path
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), (path, k)
    return back
