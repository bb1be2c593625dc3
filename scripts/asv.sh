#!/usr/bin/env bash
# The asv suite and its dashboard, which opens offline (scripts/offline_dashboard.py).
#
#   scripts/asv.sh                      # run everything once for this commit (the installed fastbp), publish
#   scripts/asv.sh --bench Fit.time_fit # any `asv run` options pass through
#   scripts/asv.sh --history 5          # the workloads over the last 5 commits, each built in asv's own
#                                       # virtualenv, then publish: the graphs get a history
#   scripts/asv.sh --compare A B        # the workloads at commits A and B in asv's environments; lists what
#                                       # changed by more than 10 % and exits 1 if anything got slower
#   scripts/asv.sh --preview            # serve asv_bench/html on http://127.0.0.1:8080
#   scripts/asv.sh --check              # only check that the suite imports and is well-formed
# --history and --compare take further `asv run` options after their arguments (default: the
# workload benchmarks, bench_workloads).
set -euo pipefail
cd "$(dirname "$0")/../asv_bench"
python -m pip show asv >/dev/null 2>&1 || python -m pip install 'asv>=0.6'
asv machine --yes >/dev/null
publish() {
  asv publish
  # asv's pages load their scripts from public CDNs: serve pinned, hash-checked copies instead
  python ../scripts/offline_dashboard.py html
  echo "dashboard written to asv_bench/html (opens offline); view it with: scripts/asv.sh --preview"
}
case "${1:-}" in
  --check)   exec asv check --python=same ;;
  --preview) exec asv preview ;;
  --history)
    n="${2:?--history needs a number of commits}"; shift 2
    [ $# -gt 0 ] || set -- --bench bench_workloads
    asv run --skip-existing-commits "HEAD~${n}..HEAD" "$@"
    publish
    exit 0 ;;
  --compare)
    a="${2:?--compare needs two commits}"; b="${3:?--compare needs two commits}"; shift 3
    [ $# -gt 0 ] || set -- --bench bench_workloads
    exec asv continuous --factor 1.1 --split "$a" "$b" "$@" ;;
esac
# --python=same: the interpreter and fastbp already installed here; results are stored under
# asv_bench/results for the current commit (--set-commit-hash), so runs accumulate by commit.
asv run --python=same --set-commit-hash "$(git rev-parse HEAD)" "$@"
publish
