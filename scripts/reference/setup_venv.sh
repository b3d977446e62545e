#!/usr/bin/env bash
# Idempotent: creates <repo>/.venv (git-ignored) with the reference's Python
# packages. A second run with everything installed only checks the imports.
#   scripts/reference/setup_venv.sh          # then
#   .venv/bin/python scripts/reference/export_goldens.py
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv
REQ=scripts/reference/requirements.txt
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup_venv: creating $VENV"
  python3 -m venv "$VENV"
fi
if "$VENV/bin/python" - "$REQ" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
want = {}
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if '==' in line:
        n, v = line.split('==')
        want[n] = v
bad = [n for n, v in want.items() if md.version(n).split('+')[0] != v]
sys.exit(1 if bad else 0)
PY
then
  echo "setup_venv: $VENV already has the packages of $REQ"
else
  echo "setup_venv: installing $REQ into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$REQ"
fi
"$VENV/bin/python" -c "import torch, numpy, safetensors; print('setup_venv: torch', torch.__version__, 'numpy', numpy.__version__, 'safetensors', safetensors.__version__)"
