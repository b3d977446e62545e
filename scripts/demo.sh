#!/usr/bin/env bash
# The main job on the built-in synthetic dataset: set-up, then train the tiny
# model single-process and on 2 MPI ranks, printing each mIoU. Its last line is
#   demo: miou_1rank=X miou_2ranks=Y
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN="$(swift build -c release --show-bin-path)/ecenet-dist"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=${DEMO_WORK_DIR:-runs/demo}
rm -rf "$WORK"

miou() { python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["mIoU"])' "$1/eval.json"; }

echo "demo: training the tiny model on the synthetic dataset, 1 process"
"$BIN" train --config configs/debug/synthetic.yaml --work-dir "$WORK/1rank" || {
  rc=$?; echo "demo: training is not available yet (exit $rc); see README.md, section Status" >&2; exit $rc; }
echo "demo: the same on 2 MPI ranks"
mpirun --oversubscribe --bind-to none -n 2 "$BIN" train --config configs/debug/synthetic.yaml --work-dir "$WORK/2ranks"
echo "demo: miou_1rank=$(miou "$WORK/1rank") miou_2ranks=$(miou "$WORK/2ranks")"
