#!/usr/bin/env bash
# Benchmarks (issue 9; not tests). Builds release first, installs the PyTorch
# venv (.venv) when missing, writes JSON under bench-out/ and prints tables.
#
#   scripts/bench.sh ops [--threads N] [--reps N]   ops vs PyTorch vs sgemm, two OpenBLAS kernels
#   scripts/bench.sh parity [--rounds N] [--ops "add batchnorm"]
#                                                    ops near PyTorch's time, ours and PyTorch alternated
#                                                    round by round; medians and rounds won
#   scripts/bench.sh step [--threads N]              training step vs PyTorch: Swin-T 512² b2, Swin-B 640² b1,
#                                                    fp32, and bf16 (train.precision=bf16 vs PyTorch bf16 autocast);
#                                                    fp32 also with direct 3×3 convs (ECENET_WINOGRAD=0; STEP_DIRECT=0 skips it)
#   scripts/bench.sh scaling [--ranks "1 2 4"]       weak scaling of `train` (tiny synthetic) under mpirun
#   scripts/bench.sh memory                          peak RSS per process, ours vs PyTorch (from step runs)
#   scripts/bench.sh data [options]                  loader throughput vs the trainer (docs/bench-data.md)
#   scripts/bench.sh --quick                         reduced run (< 5 min): Swin-T 256² b1 step vs PyTorch, sgemm,
#                                                    1 vs 2 ranks (Swin-T 256², and the tiny model); ends with
#                                                    the one-line summary
#   BENCH_BIN=path scripts/bench.sh cluster [--ranks "1 2 4 8 16"] [--parts "gemm scaling ceiling step profile"]
#                                                    many-core machine without Swift: the GEMM kernels (AMX
#                                                    included), weak scaling, one core per rank (tiny;
#                                                    Swin-T 256²), the ceiling below, the step vs PyTorch
#                                                    and per-op profiles (see mode_cluster)
#   scripts/bench.sh ceiling [--ranks "1 2 4 8 16"]  the hardware's weak-scaling ceiling (independent
#                                                    single-core processes, no MPI) and spin against yield
#
# Environment: BENCH_SWIFT_FLAGS extra `swift build` flags; ECENET_TARGET_CPU the
# kernels' target CPU (default native; Package.swift); BENCH_PYTHON a python with torch
# (default .venv/bin/python, created by scripts/reference/setup_venv.sh).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: the ops mode runs once as the
# environment sets them and once with both unset (when the environment pins
# nothing, the second run pins Haswell instead, so two kernels are compared).
#
# step: ours runs twice (OPENBLAS_CORETYPE/L2_SIZE unset = auto core, and pinned to Haswell);
# STEP_T_STEPS / STEP_B_STEPS set the timed steps (default 3 and 2, after one
# warm-up). scaling: ranks oversubscribe this machine's cores (each rank gets
# SCALE_THREADS threads, default 1), so it shows overhead, not speed-up.
#
# Adding a mode: write mode_<name>() and add it to the case at the bottom.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-out}
mkdir -p "$OUT"
THREADS=${ECENET_THREADS:-$(nproc)}
REPS=3

build_release() {
  # A prebuilt binary (BENCH_BIN) lets a machine without Swift run the benchmark (cluster mode).
  if [[ -n "${BENCH_BIN:-}" ]]; then BIN=$BENCH_BIN; echo "bench: using $BIN (BENCH_BIN; not rebuilt)" >&2; return; fi
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
  # PyTorch at its faster allocator setting in each mode. Our pool advises
  # huge pages unless ECENET_HUGEPAGES=0; PyTorch's CPU allocator does when
  # THP_MEM_ALLOC_ENABLE=1 (its opt-in). That makes its training step faster
  # (Swin-T 512² b2: 21.7 → 14.7 s) but its single ops slower (forward, three
  # alternated pairs: the add 0.30–0.35 → 1.11–1.19 ms, BatchNorm 1.33–1.43 →
  # 3.62–4.42 ms, the 1×1 conv 8.49–8.55 → 10.0–10.7 ms: every rep's fresh
  # output faults in new huge pages; BENCHMARKS.md, session 11). So the step runs get it (unless
  # ECENET_HUGEPAGES=0), the op runs keep PyTorch's default; a
  # THP_MEM_ALLOC_ENABLE set by the caller applies to both.
  TORCH_STEP_THP=1
  [[ ${ECENET_HUGEPAGES:-1} == 0 ]] && TORCH_STEP_THP=0
  TORCH_STEP_THP=${THP_MEM_ALLOC_ENABLE:-$TORCH_STEP_THP}
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
print(f"PyTorch {torch.get('torch') or 'NA (not installed)'} (THP_MEM_ALLOC_ENABLE={torch.get('thp_mem_alloc', '?')}), "
      f"threads {p['threads']}; ms = min of at least {p['reps']} runs (more for short ops)")
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

# threads_or_reps <mode> <option> [value]: applies `--threads N` or `--reps N`; any
# other option, or one without its value, is an error naming the mode.
threads_or_reps() {
  [[ $# -ge 3 ]] || { echo "bench $1: $2 needs a value" >&2; exit 2; }
  case $2 in
    --threads) THREADS=$3 ;;
    --reps) REPS=$3 ;;
    *) echo "bench $1: unknown option $2" >&2; exit 2 ;;
  esac
}

mode_ops() {
  while [[ $# -gt 0 ]]; do threads_or_reps ops "$@"; shift 2; done
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

# parity: the ops whose single `ops` run reads within noise of PyTorch's, measured
# in alternated rounds (ours, then PyTorch, per op and round) so that both see the
# same minutes of this machine; prints medians, in how many rounds ours was faster,
# and the median ×stream (for the norms and elementwise ops: --ops "layernorm gelu softmax").
mode_parity() {
  local rounds=5 ops="add batchnorm conv1x1 conv3x3" op r
  while [[ $# -gt 0 ]]; do
    case $1 in
      --rounds) [[ $# -ge 2 ]] && rounds=$2 ;;
      --ops) [[ $# -ge 2 ]] && ops=$2 ;;
      *) threads_or_reps parity "$@" ;;
    esac
    [[ $# -ge 2 ]] || { echo "bench parity: $1 needs a value" >&2; exit 2; }
    shift 2
  done
  build_release
  ensure_torch
  [[ -n "$PY" ]] || { echo "bench parity: needs PyTorch (.venv or BENCH_PYTHON)" >&2; exit 2; }
  rm -f "$OUT"/parity_*.json
  for ((r = 1; r <= rounds; r++)); do
    for op in $ops; do
      echo "bench: parity round $r/$rounds: $op" >&2
      "$BIN" bench ops --json --threads "$THREADS" --reps "$REPS" --only "$op" > "$OUT/parity_ours_${op}_$r.json"
      OMP_NUM_THREADS=$THREADS "$PY" scripts/reference/bench_torch_ops.py --threads "$THREADS" --reps "$REPS" \
        --only "$op" > "$OUT/parity_torch_${op}_$r.json"
    done
  done
  python3 - "$OUT" "$rounds" $ops <<'PY'
import json, statistics, sys
out, rounds, ops = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"{'op':<14} {'pass':<8} {'ours ms (median)':>16} {'PyTorch ms':>11} {'ratio (median of rounds)':>25} {'range':>12} "
      f"{'ours faster':>12} {'×stream (median)':>17}")
for op in ops:
    pairs, stream = {}, {}
    for r in range(1, rounds + 1):
        ours = {(o["op"], o["pass"]): o for o in json.load(open(f"{out}/parity_ours_{op}_{r}.json"))["ops"]}
        torch = {(o["op"], o["pass"]): o["ms"] for o in json.load(open(f"{out}/parity_torch_{op}_{r}.json"))["ops"]}
        for k, o in ours.items():
            if k in torch: pairs.setdefault(k, []).append((o["ms"], torch[k]))
            if "times_stream" in o: stream.setdefault(k, []).append(o["times_stream"])
    for (name, p), v in pairs.items():
        ratios = [a / b for a, b in v]
        xs = stream.get((name, p))
        print(f"{name:<14} {p:<8} {statistics.median(a for a, _ in v):>16.2f} {statistics.median(b for _, b in v):>11.2f} "
              f"{statistics.median(ratios):>25.2f} {min(ratios):>5.2f}–{max(ratios):<5.2f} {sum(r < 1 for r in ratios):>6}/{len(v)} "
              f"{statistics.median(xs) if xs else float('nan'):>17.2f}")
print(f"ratio = ours / PyTorch in one round (each side's min over its reps); {rounds} rounds, alternated; "
      "×stream = ours / the time to stream the op's bytes at the c = a + b bandwidth of the same round")
PY
}

# step_one <label> <preset> <crop> <batch> <steps> [extra bench args]: ours two or three times (OpenBLAS's
# auto-detected core: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; and pinned to
# Haswell; and with direct 3×3 convs, ECENET_WINOGRAD=0, unless STEP_DIRECT=0) + PyTorch,
# into $OUT/step_<label>_{auto,haswell,direct,torch}.json
# ours_step <json> <env arguments...> -- <preset> <crop> <batch> <steps> [extra bench args]:
# one `ecenet-dist bench step --json` run (one warm-up step, $THREADS threads)
# under `env <env arguments>`, into <json>.
ours_step() {
  local json=$1 envs=(); shift
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  local preset=$2 crop=$3 batch=$4 steps=$5; shift 5
  env "${envs[@]}" "$BIN" bench step --json --preset "$preset" --crop "$crop" \
    --batch "$batch" --steps "$steps" --warmup 1 --threads "$THREADS" "$@" > "$json"
}

# torch_step <json> <preset> <crop> <batch> <steps> [extra args]: one run of the
# PyTorch reference step (one warm-up step, $THREADS threads, huge pages as
# ensure_torch chose) into <json>, or '{}' without PyTorch.
torch_step() {
  local json=$1 preset=$2 crop=$3 batch=$4 steps=$5; shift 5
  if [[ -z "$PY" ]]; then echo '{}' > "$json"; return; fi
  THP_MEM_ALLOC_ENABLE=$TORCH_STEP_THP OMP_NUM_THREADS=$THREADS "$PY" scripts/reference/bench_torch_step.py \
    --preset "${preset//-/_}" --crop "$crop" --batch "$batch" --threads "$THREADS" --steps "$steps" --warmup 1 \
    "$@" > "$json"
}

# `env` arguments for OpenBLAS's auto-detected core: neither variable set.
AUTO_CORE=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)

step_one() {
  local label=$1 preset=$2 crop=$3 batch=$4 steps=$5; shift 5
  echo "bench: step $label: ours $preset ${crop}² b$batch, $steps steps (OpenBLAS auto core; environment has OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})" >&2
  ours_step "$OUT/step_${label}_auto.json" "${AUTO_CORE[@]}" -- "$preset" "$crop" "$batch" "$steps" "$@"
  if [[ ${STEP_HASWELL:-1} == 1 ]]; then
    echo "bench: step $label: ours (OPENBLAS_CORETYPE=Haswell)" >&2
    ours_step "$OUT/step_${label}_haswell.json" -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell -- \
      "$preset" "$crop" "$batch" "$steps" "$@"
  else  # STEP_HASWELL=0: no Haswell-pinned run (step_table says so)
    rm -f "$OUT/step_${label}_haswell.json"
  fi
  # The step's GFLOP/s count the direct conv's multiply-adds; the 3×3 convs run
  # Winograd (16/36 of them). This run does the direct sums, so its rate is the
  # rate of the arithmetic actually done.
  if [[ ${STEP_DIRECT:-1} == 1 ]]; then
    echo "bench: step $label: ours, direct 3×3 convs (ECENET_WINOGRAD=0)" >&2
    ours_step "$OUT/step_${label}_direct.json" "${AUTO_CORE[@]}" ECENET_WINOGRAD=0 -- "$preset" "$crop" "$batch" "$steps" "$@"
  else
    rm -f "$OUT/step_${label}_direct.json"
  fi
  if [[ -n "$PY" ]]; then echo "bench: step $label: PyTorch" >&2; fi
  torch_step "$OUT/step_${label}_torch.json" "$preset" "$crop" "$batch" "$steps"
}

# step_bf16 <label> <preset> <crop> <batch> <steps>: ours with train.precision=bf16 (OpenBLAS auto
# core) and PyTorch under bf16 autocast, into $OUT/step_<label>_{bf16,torchbf16}.json
step_bf16() {
  local label=$1 preset=$2 crop=$3 batch=$4 steps=$5
  echo "bench: step $label: ours, GEMMs in bf16" >&2
  ours_step "$OUT/step_${label}_bf16.json" "${AUTO_CORE[@]}" -- "$preset" "$crop" "$batch" "$steps" --precision bf16
  if [[ -n "$PY" ]]; then echo "bench: step $label: PyTorch, bf16 autocast" >&2; fi
  torch_step "$OUT/step_${label}_torchbf16.json" "$preset" "$crop" "$batch" "$steps" --bf16
}

# Table of step results; prints "R" (unset-ours / torch, min step) of the first label on the last line.
step_table() {
  python3 - "$OUT" "$@" <<'PY'
import json, sys
out, labels = sys.argv[1], sys.argv[2:]
print(f"{'case':<10} {'ours Haswell s':>14} {'ours auto s':>11} {'torch s':>8} {'ratio':>6} {'GFLOP/s':>8} {'of sgemm':>8} "
      f"{'sgemm':>6} {'RSS MiB':>8} {'pool MiB':>8} {'torch RSS':>9} {'mallocs':>7}")
first = None
import os
for l in labels:
    u = json.load(open(f"{out}/step_{l}_auto.json"))
    pinned = os.path.exists(f"{out}/step_{l}_haswell.json")  # absent under STEP_HASWELL=0
    e = json.load(open(f"{out}/step_{l}_haswell.json")) if pinned else u
    t = json.load(open(f"{out}/step_{l}_torch.json"))
    ts = t.get("step_s_min")
    r = u["step_s_min"] / ts if ts else None
    if first is None: first = r
    print(f"{l:<10} {e['step_s_min'] if pinned else float('nan'):>14.3f} {u['step_s_min']:>11.3f} {ts if ts else float('nan'):>8.3f} "
          f"{r if r else float('nan'):>6.2f} {u['gflops']:>8.1f} {u['fraction_of_sgemm']:>8.2f} {u['sgemm_2048_gflops']:>6.0f} "
          f"{u['peak_rss_mb']:>8.0f} {u['pool_peak_mb']:>8.0f} {t.get('peak_rss_mb', float('nan')):>9.0f} {u['mallocs_per_step_last']:>7}")
    print(f"{'':<10} " + (f"Haswell-pinned: core {e['openblas_corename']} {e['gflops']:.1f} GFLOP/s = {e['fraction_of_sgemm']:.2f} of its sgemm "
          f"{e['sgemm_2048_gflops']:.0f}; " if pinned else "Haswell-pinned: not run; ") + f"auto: core {u['openblas_corename']}, pool mallocs/step {u['mallocs_per_step']}, page faults/step {u['minor_faults_per_step']}; medians ours {u['step_s_median']:.3f} s, "
          f"torch {t.get('step_s_median', float('nan')):.3f} s (THP_MEM_ALLOC_ENABLE={t.get('thp_mem_alloc', '?')}); "
          f"fwd {u['forward_gflop_fvcore_per_image']:.1f} GFLOP(fvcore)/image")
    # Issue 9's measure: the better of our runs against the best sgemm of the run (either core).
    best, peak = max(u["gflops"], e["gflops"]), max(u["sgemm_2048_gflops"], e["sgemm_2048_gflops"])
    print(f"{'':<10} whole step vs the run's best sgemm: {best:.1f} / {peak:.0f} GFLOP/s = {best / peak:.2f}"
          " (counting the direct conv's multiply-adds: the 3×3 convs run Winograd, 16/36 of them)")
    if os.path.exists(f"{out}/step_{l}_direct.json"):
        d = json.load(open(f"{out}/step_{l}_direct.json"))
        print(f"{'':<10} direct 3×3 convs (ECENET_WINOGRAD=0): {d['step_s_min']:.3f} s, {d['gflops']:.1f} GFLOP/s = "
              f"{d['gflops'] / peak:.2f} of the run's best sgemm (the rate of the arithmetic done); Winograd's step is "
              f"{u['step_s_min'] / d['step_s_min']:.2f}× this one")
    if os.path.exists(f"{out}/step_{l}_bf16.json"):
        b = json.load(open(f"{out}/step_{l}_bf16.json")); tb = json.load(open(f"{out}/step_{l}_torchbf16.json"))
        tbs = tb.get("step_s_min")
        print(f"{'':<10} bf16: ours {b['step_s_min']:.3f} s ({'AVX512_BF16 kernel' if b.get('bf16_kernel') else 'emulated'}), "
              f"PyTorch autocast {tbs if tbs else float('nan'):.3f} s, ratio {b['step_s_min'] / tbs if tbs else float('nan'):.2f}; "
              f"{b['gflops']:.1f} GFLOP/s; RSS {b['peak_rss_mb']:.0f} MiB vs {tb.get('peak_rss_mb', float('nan')):.0f}; "
              f"medians {b['step_s_median']:.3f} / {tb.get('step_s_median', float('nan')):.3f} s")
print("ratio = ours (OpenBLAS auto core) min step / PyTorch min step; GFLOP/s = 2 × fvcore forward FLOPs × batch × 3 / step")
print(f"R {first if first else 'NA'}")
PY
}

mode_step() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --threads) THREADS=$2; shift 2 ;;
      *) echo "bench step: unknown option $1" >&2; exit 2 ;;
    esac
  done
  build_release
  ensure_torch
  step_one swin-t-512 swin-t 512 2 "${STEP_T_STEPS:-3}"
  step_one swin-b-640 swin-b 640 1 "${STEP_B_STEPS:-2}"
  step_bf16 swin-t-512 swin-t 512 2 "${STEP_T_STEPS:-3}"
  step_bf16 swin-b-640 swin-b 640 1 "${STEP_B_STEPS:-2}"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS"
  step_table swin-t-512 swin-b-640 | grep -v '^R '
}

mode_memory() {
  build_release
  ensure_torch
  for l in swin-t-512 swin-b-640; do
    [[ -f $OUT/step_${l}_auto.json ]] || { echo "bench memory: run 'scripts/bench.sh step' first (reads $OUT/step_*.json)" >&2; exit 2; }
  done
  python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
print(f"{'case':<12} {'ours peak RSS MiB':>18} {'ours pool peak MiB':>19} {'PyTorch peak RSS MiB':>21} {'ours/torch':>10}")
for l in ("swin-t-512", "swin-b-640"):
    u = json.load(open(f"{out}/step_{l}_auto.json")); t = json.load(open(f"{out}/step_{l}_torch.json"))
    tr = t.get("peak_rss_mb")
    print(f"{l:<12} {u['peak_rss_mb']:>18.0f} {u['pool_peak_mb']:>19.0f} {tr if tr else float('nan'):>21.0f} "
          f"{u['peak_rss_mb'] / tr if tr else float('nan'):>10.2f}")
PY
}

# scale_run <ranks> <iterations> <per-rank batch> [config overrides...]: one weak-scaling
# point into $OUT/scale_<SCALE_TAG><ranks>/; SCALE_MPI_ARGS adds mpirun options (cluster mode
# binds each rank to a core with it).
scale_run() {
  local n=$1 it=$2 b=$3 dir=$OUT/scale_${SCALE_TAG:-}$1
  shift 3
  rm -rf "$dir"
  echo "bench: scaling: mpirun -n $n ${SCALE_MPI_ARGS:-} train (${SCALE_TAG:-tiny_}synthetic, $b image(s)/rank, $it iterations)" >&2
  # shellcheck disable=SC2086
  mpirun -n "$n" --oversubscribe --allow-run-as-root -x OMPI_MCA_rmaps_base_oversubscribe=1 ${SCALE_MPI_ARGS:-} \
    "$BIN" train --config configs/debug/synthetic.yaml --work-dir "$dir" --iterations "$it" \
    --threads "${SCALE_THREADS:-1}" train.global_batch=$((n * b)) train.per_rank_batch="$b" \
    train.log_every=5 train.checkpoint_every=0 train.eval_every=0 evaluation.samples=2 data.synthetic.val_count=2 "$@" \
    > "$dir.log" 2>&1 || { echo "bench: scaling run with $n rank(s) failed; see $dir.log" >&2; tail -5 "$dir.log" >&2; return 1; }
}

# scale_table <per-rank batch> <ranks...>: table over $OUT/scale_<n>/metrics.jsonl (train records
# after the first window); last line "C <exposed communication share at the largest n>".
# comm_wait (rank 0 blocked in collectives) = straggler_wait (waiting for a slower rank's busy
# time) + comm_exposed (the rest: communication that overlap did not hide); records written
# before that split have comm_wait alone, which then stands for all three.
# With SCALE_AGAIN=<tag>, a last line compares the 1-rank run $OUT/scale_<tag>1 (made after
# the others) with the table's own 1-rank run $OUT/scale_<SCALE_TAG>1: the machine's drift.
scale_table() {
  python3 - "$OUT" "${SCALE_TAG:-}" "${SCALE_AGAIN:-}" "$@" <<'PY'
import json, os, sys
out, tag, again, b = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ranks = [int(x) for x in sys.argv[5:]]
def records(run):
    """A run's train records after the first window (warm-up); None when it has none."""
    path = f"{out}/scale_{run}/metrics.jsonl"
    if not os.path.exists(path): return None
    recs = [json.loads(l) for l in open(path) if '"train"' in l]
    return [r for r in recs if r.get("type") == "train"][1:] or recs or None
def rate(recs): return sum(r["it_per_s"] for r in recs) / len(recs)
base = None; last = None
print(f"{'ranks':>5} {'it/s':>7} {'images/s':>9} {'efficiency':>10} {'comm_wait':>9} {'= straggler':>11} {'+ exposed':>9} {'data_wait':>9}  (shares of the step)")
for n in ranks:
    recs = records(f"{tag}{n}")
    if recs is None:
        print(f"{n:>5} failed: see {out}/scale_{tag}{n}.log"); continue
    mean = lambda key, default=None: sum(r.get(key, r[default] if default else 0) for r in recs) / len(recs)
    it = rate(recs)
    comm, data = mean("comm_wait"), mean("data_wait")
    straggler, exposed = mean("straggler_wait"), mean("comm_exposed", "comm_wait")
    if base is None: base = it
    last = exposed
    print(f"{n:>5} {it:>7.2f} {it * n * b:>9.1f} {it / base:>10.2f} {comm:>9.3f} {straggler:>11.3f} {exposed:>9.3f} {data:>9.3f}")
cores = len(os.sched_getaffinity(0))
print("weak scaling: fixed images per rank; efficiency = it/s(n) / it/s(1); " +
      (f"ranks oversubscribe this machine's {cores} cores" if max(ranks) * int(os.environ.get("SCALE_THREADS", "1")) > cores
       else f"{cores} cores, one per rank or more"))
if again:
    first, second = records(f"{tag}1"), records(f"{again}1")
    if first is None or second is None:
        print(f"1 rank again after the others: no rate to compare (see {out}/scale_{tag}1.log, scale_{again}1.log)")
    else:
        before, after = rate(first), rate(second)
        print(f"1 rank again after the others: {after:.3f} it/s against {before:.3f} before ({after / before:.2f}×): "
              "the efficiencies above carry about that much drift of the machine itself")
print(f"C {last:.3f}")
PY
}

# ranks_option <mode> <default ranks> [args...]: sets RANKS from `--ranks "1 2 4"` (else the
# default); any other option is an error naming the mode.
ranks_option() {
  local mode=$1
  RANKS=$2
  shift 2
  while [[ $# -gt 0 ]]; do
    case $1 in
      --ranks) RANKS=$2; shift 2 ;;
      *) echo "bench $mode: unknown option $1" >&2; exit 2 ;;
    esac
  done
}

mode_scaling() {
  ranks_option scaling "1 2 4" "$@"
  local ranks=$RANKS it=${SCALE_ITERATIONS:-30} b=2
  build_release
  for n in $ranks; do scale_run "$n" "$it" "$b"; done
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; ${SCALE_THREADS:-1} thread(s) per rank"
  # shellcheck disable=SC2086
  scale_table "$b" $ranks | grep -v '^C '
}

mode_quick() {
  build_release
  ensure_torch
  STEP_DIRECT=0 step_one quick swin-t 256 1 2
  local tab ratio frac comm
  tab=$(step_table quick)
  echo "$tab" | grep -v '^R '
  ratio=$(echo "$tab" | sed -n 's/^R //p')
  [[ $ratio == NA ]] || ratio=$(printf '%.2f' "$ratio")
  frac=$(python3 -c "import json, sys; print(f\"{json.load(open(sys.argv[1]))['fraction_of_sgemm']:.2f}\")" "$OUT/step_quick_auto.json")
  # 1 vs 2 ranks on the model the step ran (Swin-T 256², 1 image per rank), whose
  # bucketed allreduce has a backward to hide behind; then the tiny model, whose
  # 20 ms steps are bound by collective latency (for comparison; not the summary).
  local tiny
  # 10 iterations, logged every 2: four windows after the warm-up one. The
  # comm_wait share of a single 2-iteration window on 2 vCPUs ranges 0.005–0.11
  # (BENCHMARKS.md session 14), so two windows made a noisy summary.
  export SCALE_TAG=swint_
  SWINT_ITERATIONS=10 swint_scale_run 1
  SWINT_ITERATIONS=10 swint_scale_run 2
  tab=$(scale_table 1 1 2)
  echo "$tab" | grep -v '^C '
  comm=$(echo "$tab" | sed -n 's/^C //p')
  export SCALE_TAG=tiny_
  scale_run 1 15 2
  scale_run 2 15 2
  tab=$(scale_table 2 1 2)
  echo "tiny model, 2 images per rank:"
  echo "$tab" | grep -v '^C '
  tiny=$(echo "$tab" | sed -n 's/^C //p')
  unset SCALE_TAG
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS; ratio and gemm fraction with OpenBLAS's auto-detected core"
  echo "comm_exposed_fraction (comm_wait less straggler_wait): Swin-T 256² on 2 ranks $comm (the summary's), tiny model on 2 ranks $tiny"
  echo "bench: step_ratio_vs_pytorch=$ratio gemm_fraction_of_peak=$frac comm_exposed_fraction=$comm"
}

# cluster: issue 9 on a many-core machine, from a prebuilt binary (BENCH_BIN=path; needs
# mpirun and python3, and torch for the PyTorch columns; no Swift). Parts, in this order
# (--parts "…" picks some, in the order given; each goes on when an earlier one fails):
#   gemm      every GEMM kernel on all cores (`bench gemm`: OpenBLAS, ours fp32, AVX512_BF16,
#             and AMX where the CPU has it, checked against its C emulation); then, where the
#             CPU has AMX and every check passed, the bf16 Swin-T step with ECENET_AMX=0
#   scaling   weak scaling over --ranks (default "1 2 4 8 16"), one core and one compute thread
#             per rank, of the tiny model (2 images/rank) and of Swin-T 256², 150 classes (1/rank)
#   ceiling   N independent single-core steps (no MPI), and OpenMPI spinning against yielding
#   step      the training step against PyTorch on all cores: Swin-T 512² b2 and Swin-B 640² b1
#             in fp32, Swin-T in bf16, and bf16 through the fp32 GEMMs (ECENET_BF16_KERNEL=0)
#   profile   the per-op profile of the Swin-T step on all cores (fp32, bf16) and on 2
# Sessions lent the machine have little time: the parts never measured there come first.
mode_cluster() {
  local parts="gemm scaling ceiling step profile" args=() part scaled=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --parts) parts=$2; shift 2 ;;
      *) args+=("$1"); shift ;;
    esac
  done
  for part in $parts; do
    case $part in
      gemm | scaling | ceiling | step | profile) ;;
      *) echo "bench cluster: unknown part '$part' (gemm, scaling, ceiling, step, profile)" >&2; exit 2 ;;
    esac
  done
  ranks_option cluster "1 2 4 8 16" "${args[@]}"
  build_release
  ensure_torch
  export SCALE_MPI_ARGS=${SCALE_MPI_ARGS---bind-to core --map-by core}
  echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load $(cut -d' ' -f1-3 /proc/loadavg); parts: $parts"
  for part in $parts; do
    case $part in
      gemm) cluster_gemm ;;
      scaling) cluster_scaling; scaled=swint_ ;;
      ceiling)
        # shellcheck disable=SC2086
        ceiling_independent $RANKS
        # Yielding's runs are the scaling part's when it ran; else spin_against_yield runs its own.
        spin_against_yield "$(largest_up_to_8 $RANKS)" "$scaled" ;;
      step) cluster_step ;;
      profile) cluster_profile ;;
    esac
  done
}

# The AMX kernel (written on a machine without AMX; the default bf16 kernel on AMX CPUs since
# session 15): its check against the C emulation and the GEMM rates of every kernel; then,
# where the CPU has AMX and every check passed, the bf16 step without the tiles
# (ECENET_AMX=0, the AVX512_BF16 kernel), against which `step`'s bf16 row (on the tiles) reads.
cluster_gemm() {
  echo "== GEMM kernels on $THREADS threads (bench gemm): OpenBLAS, ours fp32, AVX512_BF16, AMX"
  if "$BIN" bench gemm --threads "$THREADS" --reps 5 && grep -qw amx_bf16 /proc/cpuinfo; then
    echo "== bf16 step without AMX tiles (ECENET_AMX=0: the AVX512_BF16 kernel), $THREADS threads"
    swint_bf16_step ECENET_AMX=0
  fi
}

# swint_bf16_step <VAR=value...>: the Swin-T 512² b2 bf16 step of `bench step` on all
# threads under those variables; prints its header (which names the bf16 kernel) and times.
swint_bf16_step() {
  env "$@" "$BIN" bench step --preset swin-t --crop 512 --batch 2 --threads "$THREADS" --precision bf16 \
    --steps "${STEP_T_STEPS:-3}" --warmup 1 | grep -E '^(bench step|step):' || true
}

cluster_scaling() {
  local n
  echo "== weak scaling: tiny model, 2 images per rank, ${SCALE_ITERATIONS:-30} iterations"
  export SCALE_TAG=tiny_
  for n in $RANKS; do scale_run "$n" "${SCALE_ITERATIONS:-30}" 2 || true; done
  # shellcheck disable=SC2086
  scale_table 2 $RANKS | grep -v '^C '
  echo "== weak scaling: Swin-T 256², 150 classes, 1 image per rank, ${SWINT_ITERATIONS:-6} iterations"
  export SCALE_TAG=swint_
  for n in $RANKS; do swint_scale_run "$n" || true; done
  # One rank again after the others: on a shared VM the machine's own speed
  # drifts between runs minutes apart (session 15: 0.90 then 0.69 at 8 ranks),
  # and an efficiency is only as good as the 1-rank run it divides by.
  SCALE_TAG=swint_again_ swint_scale_run 1 || true
  # shellcheck disable=SC2086
  SCALE_AGAIN=swint_again_ scale_table 1 $RANKS | grep -v '^C '
  unset SCALE_TAG
}

cluster_step() {
  echo "== training step on $THREADS threads, ours vs PyTorch"
  STEP_HASWELL=0 STEP_DIRECT=0 step_one swin-t-512 swin-t 512 2 "${STEP_T_STEPS:-3}" || true
  STEP_HASWELL=0 STEP_DIRECT=0 step_one swin-b-640 swin-b 640 1 "${STEP_B_STEPS:-2}" || true
  step_bf16 swin-t-512 swin-t 512 2 "${STEP_T_STEPS:-3}" || true
  step_table swin-t-512 swin-b-640 | grep -v '^R ' || true
  # bf16 without the AVX512_BF16 kernel (bf16-rounded copies through the fp32 GEMMs):
  # does vdpbf16ps outrun fp32 FMA on this CPU?
  echo "== bf16 step with ECENET_BF16_KERNEL=0 (rounded copies, fp32 GEMMs), $THREADS threads"
  swint_bf16_step ECENET_BF16_KERNEL=0
}

# Which ops stop scaling: the tape's per-op wall time on all threads (fp32 and bf16)
# and on 2 (fp32; one timed step after two warm-ups, which leave the pool warm).
cluster_profile() {
  local spec
  for spec in "$THREADS fp32 2 2" "$THREADS bf16 2 2" "2 fp32 1 2"; do
    set -- $spec
    echo "== per-op profile: Swin-T 512² b2, $2, $1 threads (bench step --profile)"
    "$BIN" bench step --preset swin-t --crop 512 --batch 2 --threads "$1" --precision "$2" --steps "$3" --warmup "$4" \
      --profile | tail -n +5 || true
  done
}

# swint_scale_run <ranks>: one Swin-T 256² weak-scaling point (1 image per rank, SWINT_ITERATIONS
# iterations, default 6) via scale_run.
swint_scale_run() {
  scale_run "$1" "${SWINT_ITERATIONS:-6}" 1 model.backbone=swin-t model.channels=256 model.num_classes=150 data.synthetic.size=256 \
    'data.scale=[256,256]' 'data.crop_size=[256,256]' 'data.test_scale=[256,256]' train.log_every=2 \
    evaluation.samples=0 data.synthetic.val_count=1
}

# largest_up_to_8 <ranks...>: the largest of them that is at most 8 and at most this machine's cores (1 if none).
largest_up_to_8() {
  local n best=1
  for n in "$@"; do if (( n <= 8 && n <= $(nproc) && n > best )); then best=$n; fi; done
  echo "$best"
}

# ceiling_independent <ranks...>: the weak-scaling ceiling of the hardware alone. For each N,
# N independent `bench step --threads 1` processes (Swin-T 256² b1, no MPI), each pinned to
# its own core, run together; a synchronous training step waits for its slowest rank, so
# (1-process step) / (slowest of N) bounds `train`'s efficiency at N ranks. (Session 7, 16-core
# Xeon: 0.83 at 8, against 0.63–0.78 measured for `train`.)
ceiling_independent() {
  local n i cores base="" line mn mean mx
  cores=$(nproc)
  echo "== no MPI: N independent 'bench step --threads 1' processes (Swin-T 256² b1), one per core, together"
  printf '%5s %8s %8s %8s %8s\n' N "min s" "mean s" "max s" ceiling
  for n in "$@"; do
    if (( n > cores )); then echo "$(printf '%5d' "$n") skipped: more than the $cores cores"; continue; fi
    for ((i = 0; i < n; i++)); do
      taskset -c "$i" "$BIN" bench step --preset swin-t --crop 256 --batch 1 --threads 1 --steps 3 --warmup 1 \
        > "$OUT/ceiling_${n}_$i.txt" 2>&1 &
    done
    wait
    # awk, not grep: a process that failed leaves no "step:" line, and must not end the run (set -e).
    line=$(awk '/^step:/ {print $3}' "$OUT"/ceiling_"${n}"_*.txt | sort -n |
      awk '{s += $1; a[NR] = $1} END {if (NR) printf "%s %.3f %s %d", a[1], s / NR, a[NR], NR}')
    if [[ -z "$line" || "${line##* }" != "$n" ]]; then
      echo "$(printf '%5d' "$n") failed: see $OUT/ceiling_${n}_*.txt"; continue
    fi
    read -r mn mean mx _ <<< "$line"
    [[ -z "$base" ]] && base=$mx
    printf '%5d %8s %8s %8s %8s\n' "$n" "$mn" "$mean" "$mx" "$(awk -v b="$base" -v m="$mx" 'BEGIN {printf "%.2f", b / m}')"
  done
  echo "ceiling = the first N's slowest step / this N's slowest step: the best weak-scaling efficiency the hardware allows"
}

# spin_against_yield <ranks> [yield tag]: Swin-T 256² `train` on 1 and <ranks> ranks with OpenMPI
# spinning while it waits (OMPI_MCA_mpi_yield_when_idle=0) and, unless a tag of runs already
# made with the yielding default is given, yielding. Efficiency of each against its own 1 rank.
spin_against_yield() {
  local big=$1 tag=${2:-} mpi=${SCALE_MPI_ARGS:-} n
  (( big > 1 )) || { echo "== spin against yield: skipped (needs 2 or more cores)"; return 0; }
  echo "== train, Swin-T 256², 1 and $big ranks: OpenMPI yielding while it waits (the default) against spinning"
  if [[ -z "$tag" ]]; then
    tag=yield_
    for n in 1 "$big"; do SCALE_TAG=$tag swint_scale_run "$n" || true; done
  fi
  for n in 1 "$big"; do
    SCALE_TAG=spin_ SCALE_MPI_ARGS="$mpi -x OMPI_MCA_mpi_yield_when_idle=0" swint_scale_run "$n" || true
  done
  echo "yielding:"; SCALE_TAG=$tag scale_table 1 1 "$big" | grep -v '^C ' | grep -v '^weak scaling'
  echo "spinning:"; SCALE_TAG=spin_ scale_table 1 1 "$big" | grep -v '^C ' | grep -v '^weak scaling'
}

# The hardware's weak-scaling ceiling and spin against yield, on a machine with Swift or with BENCH_BIN.
#   scripts/bench.sh ceiling [--ranks "1 2 4 8 16"]
mode_ceiling() {
  ranks_option ceiling "1 2 4 8 16" "$@"
  local ranks=$RANKS
  build_release
  export SCALE_MPI_ARGS=${SCALE_MPI_ARGS---bind-to core --map-by core}
  # shellcheck disable=SC2086
  ceiling_independent $ranks
  # shellcheck disable=SC2086
  spin_against_yield "$(largest_up_to_8 $ranks)"
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
  parity) shift; mode_parity "$@" ;;
  step) shift; mode_step "$@" ;;
  scaling) shift; mode_scaling "$@" ;;
  memory) shift; mode_memory "$@" ;;
  data) shift; mode_data "$@" ;;
  --quick|quick) shift; mode_quick "$@" ;;
  cluster) shift; mode_cluster "$@" ;;
  ceiling) shift; mode_ceiling "$@" ;;
  *) sed -n '2,34p' "$0"; exit 2 ;;
esac
