#!/usr/bin/env bash
# The asv suite against the installed fastbp (no environments built), then the dashboard.
#
#   scripts/asv.sh                      # run everything once for this commit, publish the HTML
#   scripts/asv.sh --bench Fit.time_fit # any `asv run` options pass through
#   scripts/asv.sh --preview            # serve asv_bench/html on http://127.0.0.1:8080
#   scripts/asv.sh --check              # only check that the suite imports and is well-formed
set -euo pipefail
cd "$(dirname "$0")/../asv_bench"
python -m pip show asv >/dev/null 2>&1 || python -m pip install 'asv>=0.6'
asv machine --yes >/dev/null
case "${1:-}" in
  --check)   exec asv check --python=same ;;
  --preview) exec asv preview ;;
esac
# --python=same: the interpreter and fastbp already installed here; results are stored under
# asv_bench/results for the current commit (--set-commit-hash), so runs accumulate by commit.
asv run --python=same --set-commit-hash "$(git rev-parse HEAD)" "$@"
asv publish
echo "dashboard written to asv_bench/html; view it with: scripts/asv.sh --preview"
