#!/usr/bin/env bash
# Idempotent set-up: Debian packages the build links against, then a release build.
# Safe to run any number of times; a second run with everything present only
# checks and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libopenmpi-dev openmpi-bin libopenblas-dev libpng-dev libzstd-dev
      libturbojpeg0-dev pkg-config)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # apt-get update only when the package lists are absent or the install fails on them.
  if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then $SUDO apt-get update -qq; fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  echo "setup: installed ${#missing[@]} package(s)"
else
  echo "setup: Debian packages already present (${PKGS[*]})"
fi

if [[ "${ECENET_SKIP_BUILD:-0}" != 1 ]]; then
  echo "setup: swift build -c release"
  swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || { echo "setup: release build failed" >&2; exit 1; }
  echo "setup: built $(swift build -c release --show-bin-path)/ecenet-dist"
fi
