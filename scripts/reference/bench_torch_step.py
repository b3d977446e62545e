#!/usr/bin/env python3
"""One ECENet training step (forward + backward + AdamW) of the PyTorch
reference model, timed on a fixed thread count: the baseline that
`scripts/bench.sh step` compares ecenet-dist against.

  python bench_torch_step.py --preset swin_t --crop 512 --batch 2 --threads 2 [--bf16]

Prints one JSON object: median/min step seconds, peak RSS, settings.
The model is the spec's full ECENet (ecenet_ref.py), with the same head
width (256) and class count as ours; BatchNorm in the head (SyncBN == BN in
one process); drop path as the preset; dropout 0.1.
"""
import argparse, json, os, resource, statistics, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
import ecenet_ref as R

ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="swin_t")
ap.add_argument("--crop", type=int, default=512)
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--classes", type=int, default=150)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16) around forward + loss")
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = R.ECENetConfig(swin=R.SWIN_PRESETS[a.preset], channels=256, num_classes=a.classes, alpha=1.0, sau_heads=8)
model = R.ECENet(cfg).train()
opt = torch.optim.AdamW(model.parameters(), lr=6e-5, weight_decay=0.01)
img = torch.randn(a.batch, 3, a.crop, a.crop)
label = torch.randint(0, a.classes, (a.batch, a.crop, a.crop))
label[:, :8] = 255

def step():
    opt.zero_grad(set_to_none=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        out = model(img)
        terms = R.loss_terms(out, label, cfg)
    terms["total"].float().backward()
    opt.step()

times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter(); step(); dt = time.perf_counter() - t0
    if i >= a.warmup: times.append(dt)
print(json.dumps({
    "impl": "pytorch", "torch": torch.__version__, "preset": a.preset, "crop": a.crop, "batch": a.batch,
    "classes": a.classes, "threads": a.threads, "bf16": a.bf16,
    "step_s_median": statistics.median(times), "step_s_min": min(times),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    "params": sum(p.numel() for p in model.parameters()),
    # PyTorch's allocator advises huge pages only when this is 1 (bench.sh sets it to match ours).
    "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
}))
