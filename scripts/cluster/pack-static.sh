#!/usr/bin/env bash
# Packs a release binary for a node without Swift (a many-core benchmark machine):
# the Swift runtime linked in (--static-swift-stdlib), kernels for AVX-512 CPUs
# (ECENET_TARGET_CPU, default skylake-avx512), stripped and gzipped, with
# libturbojpeg.so.0 beside it and run.sh, which runs `scripts/bench.sh cluster`
# from that directory. The node needs OpenMPI 4.x, libopenblas, libpng16, libzstd
# and a glibc at least as new as this machine's (docs/cluster.md).
#
#   scripts/cluster/pack-static.sh [DIR]      # default bench-out/device (git-ignored)
#   # on the node, in the root of a copy of this repository with DIR in it:
#   bash DIR/run.sh [--parts "gemm scaling step"] [--ranks "1 2 4 8 16"]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-bench-out/device}
cpu=${ECENET_TARGET_CPU:-skylake-avx512}
mkdir -p "$dir"
echo "pack-static: swift build -c release --static-swift-stdlib for $cpu (.build-device)"
ECENET_TARGET_CPU=$cpu swift build -c release --static-swift-stdlib --build-path .build-device 2>&1 \
  | grep -vE '^\[[0-9]+/[0-9]+\]' || { echo "pack-static: build failed" >&2; exit 1; }
strip -o "$dir/ecenet-dist" .build-device/release/ecenet-dist
gzip -9f "$dir/ecenet-dist"
jpeg=$(ldconfig -p | awk '/libturbojpeg\.so\.0 .*x86-64/ {print $NF; exit}')
[[ -n "$jpeg" ]] || { echo "pack-static: libturbojpeg.so.0 not found (scripts/setup.sh installs it)" >&2; exit 1; }
cp -L "$jpeg" "$dir/libturbojpeg.so.0"
cat > "$dir/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs `scripts/bench.sh cluster "$@"` with the packed binary; run it from the repository root.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Unpacked outside this directory, which stays small enough to be copied to the node again.
bin=${TMPDIR:-/tmp}/ecenet-dist-packed
gunzip -c "$here/ecenet-dist.gz" > "$bin" && chmod +x "$bin"
export LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export BENCH_BIN="$bin" BENCH_PYTHON=${BENCH_PYTHON:-python3} BENCH_OUT=${BENCH_OUT:-/tmp/bench}
[[ -f scripts/bench.sh ]] || { echo "run.sh: run it from the repository root (no scripts/bench.sh in $PWD)" >&2; exit 2; }
"$BENCH_BIN" --help >/dev/null || { echo "run.sh: the packed binary does not start here (libraries? glibc?)" >&2; exit 1; }
bash scripts/bench.sh cluster "$@"
RUN
chmod +x "$dir/run.sh"
ls -l "$dir"
echo "pack-static: done; on the node: bash $dir/run.sh --parts \"gemm scaling step\""
