#!/usr/bin/env bash
# The device check in one command (benchmarks/README.md, "device_check.py"):
#   benchmarks/device_check.sh [OUT] [options of benchmarks/device_check.py]
# OUT defaults to benchmarks/results/device_check.  Uses the checkout's .venv (or ICONICITY_VENV,
# else python3); no network; builds the stand-ins if .cache/standins did not travel; at most
# 10 minutes.  Exit status: the script's (1 on any mismatch, 124 when out of time).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/benchmarks/results/device_check}"
shift $(( $# > 0 ? 1 : 0 ))
PY="${ICONICITY_VENV:-$ROOT/.venv}/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
cd "$ROOT"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi: CPU mode unless torch sees a GPU" >&2
timeout 600 "$PY" benchmarks/device_check.py --out "$OUT" "$@"
