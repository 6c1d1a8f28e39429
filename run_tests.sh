#!/usr/bin/env bash
# Lint, format check and the test suite.  Run ./run_all.sh (or ./run_all.sh --setup-only) first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ICONICITY_VENV:-$ROOT/.venv}"
cd "$ROOT"
if [ ! -x "$VENV/bin/python" ]; then
  echo "run_tests.sh: no environment at $VENV; run ./run_all.sh --setup-only first" >&2
  exit 2
fi
echo "==> ruff check"
"$VENV/bin/ruff" check .
echo "==> ruff format --check"
"$VENV/bin/ruff" format --check .
echo "==> pytest"
exec "$VENV/bin/python" -m pytest "$@"
