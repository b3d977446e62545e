#!/usr/bin/env bash
# Benchmarks (issue 9; not tests). Builds release first, installs the PyTorch
# venv (.venv) when missing, writes JSON under bench-out/ and prints tables.
#
#   scripts/bench.sh ops [--threads N] [--reps N]   ops vs PyTorch vs sgemm, two OpenBLAS kernels
#   scripts/bench.sh --quick                         reduced run; ends with the one-line summary
#
# Environment: BENCH_SWIFT_FLAGS extra `swift build` flags (e.g.
# "-Xswiftc -target-cpu -Xswiftc x86-64-v3"); BENCH_PYTHON a python with torch
# (default .venv/bin/python, created by scripts/reference/setup_venv.sh).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: the ops mode runs once as the
# environment sets them and once with both unset (when the environment pins
# nothing, the second run pins Haswell instead, so two kernels are compared).
#
# Adding a mode: write mode_<name>() and add it to the case at the bottom.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-out}
mkdir -p "$OUT"
THREADS=${ECENET_THREADS:-$(nproc)}
REPS=3

build_release() {
  echo "bench: swift build -c release ${BENCH_SWIFT_FLAGS:-}" >&2
  # shellcheck disable=SC2086
  swift build -c release ${BENCH_SWIFT_FLAGS:-} >&2
  # shellcheck disable=SC2086
  BIN="$(swift build -c release ${BENCH_SWIFT_FLAGS:-} --show-bin-path)/ecenet-dist"
}

# Sets PY to a python with torch, or empty (PyTorch columns become NA).
ensure_torch() {
  PY=${BENCH_PYTHON:-.venv/bin/python}
  if ! "$PY" -c "import torch" 2>/dev/null; then
    if [[ -z "${BENCH_PYTHON:-}" ]]; then
      scripts/reference/setup_venv.sh >&2 || echo "bench: could not set up .venv; PyTorch columns will be NA" >&2
    fi
    "$PY" -c "import torch" 2>/dev/null || PY=""
  fi
}

# ours <label> <env-prefix...> -- <bench args...>: runs `bench ops --json` into $OUT/ours_<label>.json
ours() {
  local label=$1; shift
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done; shift
  echo "bench: ecenet-dist bench ops ($label: ${envs[*]:-environment as is})" >&2
  env "${envs[@]}" "$BIN" bench ops --json --threads "$THREADS" --reps "$REPS" "$@" > "$OUT/ours_$label.json"
}

torch_ops() {
  if [[ -n "$PY" ]]; then
    echo "bench: PyTorch ops ($("$PY" -c 'import torch; print(torch.__version__)'), $THREADS threads)" >&2
    OMP_NUM_THREADS=$THREADS "$PY" scripts/reference/bench_torch_ops.py --threads "$THREADS" --reps "$REPS" "$@" > "$OUT/torch.json"
  else
    echo '{"ops": [], "torch": null}' > "$OUT/torch.json"
  fi
}

# Side-by-side table of $OUT/ours_*.json (first = primary) and $OUT/torch.json.
compare() {
  python3 - "$OUT" "$@" <<'PY'
import json, sys
out, labels = sys.argv[1], sys.argv[2:]
runs = [(l, json.load(open(f"{out}/ours_{l}.json"))) for l in labels]
torch = json.load(open(f"{out}/torch.json"))
tk = {(r["op"], r["pass"]): r for r in torch["ops"]}
p = runs[0][1]
for l, r in runs:
    print(f"ours[{l}]: OpenBLAS core {r['openblas_corename']} (OPENBLAS_CORETYPE={r['openblas_coretype_env']}, "
          f"OPENBLAS_L2_SIZE={r['openblas_l2_size_env']}): sgemm {r['sgemm_peak_shape']} {r['sgemm_peak_gflops']:.1f} GFLOP/s, "
          f"best shape {r['sgemm_best_gflops']:.1f}; stream {r['stream_gbs']:.1f} GB/s; sgemm vs naive GEMM: "
          f"{'ok' if r['sgemm_check_ok'] else 'MISMATCH'} (max rel err {max(c['max_rel_err'] for c in r['sgemm_checks']):.1e})")
print(f"PyTorch {torch.get('torch') or 'NA (not installed)'}, threads {p['threads']}; ms = min of at least {p['reps']} runs (more for short ops)")
cols = ["op", "pass"] + [f"ours[{l}] ms" for l, _ in runs] + ["torch ms", "ours/torch"] + \
       [f"GFLOP/s[{l}]" for l, _ in runs] + [f"of sgemm[{l}]" for l, _ in runs] + ["GB/s", "×stream"]
w = [13, 8] + [14] * len(runs) + [9, 10] + [13] * len(runs) + [13] * len(runs) + [6, 8]
def row(c): return " ".join((s.ljust(n) if i < 2 else s.rjust(n)) for i, (s, n) in enumerate(zip(c, w)))
print(row(cols))
idx = [{(r["op"], r["pass"]): r for r in run["ops"]} for _, run in runs]
for r in p["ops"]:
    key = (r["op"], r["pass"])
    t = tk.get(key)
    c = [r["op"], r["pass"]] + [f"{d[key]['ms']:.2f}" if key in d else "" for d in idx]
    c += [f"{t['ms']:.2f}" if t else "NA", f"{r['ms'] / t['ms']:.2f}" if t else "NA"]
    c += [f"{d[key]['gflops']:.1f}" if key in d and "gflops" in d[key] else "" for d in idx]
    c += [f"{d[key]['fraction_of_sgemm']:.2f}" if key in d and "fraction_of_sgemm" in d[key] else "" for d in idx]
    c += [f"{r['gbs']:.1f}" if "gbs" in r else "", f"{r['times_stream']:.2f}" if "times_stream" in r else ""]
    print(row(c))
json.dump({"ours": dict(runs), "torch": torch}, open(f"{out}/ops.json", "w"), indent=1, sort_keys=True)
print(f"(all figures: {out}/ops.json)")
PY
}

mode_ops() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --threads) THREADS=$2; shift 2 ;;
      --reps) REPS=$2; shift 2 ;;
      *) echo "bench ops: unknown option $1" >&2; exit 2 ;;
    esac
  done
  build_release
  ensure_torch
  local second
  ours env --
  if [[ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]]; then
    second=unset; ours unset -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE --
  else
    second=haswell; ours haswell OPENBLAS_CORETYPE=Haswell --
  fi
  torch_ops
  compare env "$second"
}

mode_quick() {
  build_release
  ensure_torch
  ours quick -- --quick
  torch_ops --quick
  compare quick
  # Stand-in until the step benchmark lands: FLOP-weighted GFLOP/s of the
  # GEMM-bound ops' forward+backward over the best sgemm rate of the same run.
  local frac
  frac=$(python3 - "$OUT/ours_quick.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ops = [o for o in r["ops"] if o["bound"] == "gemm" and o["pass"] == "fwd+bwd"]
print(f"{sum(o['gflop'] for o in ops) / sum(o['ms'] / 1e3 for o in ops) / r['sgemm_best_gflops']:.2f}")
PY
)
  echo "bench: step and comm benchmarks not implemented yet (issue 9): step_ratio and comm_exposed are NA;"
  echo "bench: gemm_fraction_of_peak is over the GEMM-bound ops (fwd+bwd), not yet over a whole training step"
  echo "bench: step_ratio_vs_pytorch=NA gemm_fraction_of_peak=$frac comm_exposed_fraction=NA"
}

# Loader throughput at the ADE20K 640² recipe vs the trainer (issue 5): fixture
# JPEGs packed with the real packer, decode / augment / loader with 1 and 2 workers.
#   scripts/bench.sh data [--threads N] [--reps N] [--quick]
#       [--trainer-images-per-second X [--trainer-cores N]]   (default: issue 9's Swin-B 640² targets)
mode_data() {
  local args=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --threads) THREADS=$2; shift 2 ;;
      --reps) REPS=$2; shift 2 ;;
      --quick) args+=(--quick); shift ;;
      --trainer-images-per-second) export BENCH_TRAINER_IMAGES_PER_SECOND=$2; shift 2 ;;
      --trainer-cores) export BENCH_TRAINER_CORES=$2; shift 2 ;;
      *) echo "bench data: unknown option $1" >&2; exit 2 ;;
    esac
  done
  build_release
  "$BIN" bench data --json --threads "$THREADS" --reps "$REPS" "${args[@]}" > "$OUT/data.json"
  echo "(all figures: $OUT/data.json)"
}

case ${1:-} in
  ops) shift; mode_ops "$@" ;;
  data) shift; mode_data "$@" ;;
  --quick|quick) shift; mode_quick "$@" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
