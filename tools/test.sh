#!/usr/bin/env bash
# The one test command (README, .ci/run): notebooks through nbdev-test (slow/cuda cells skipped), then pytest.
# It first sets up what the tests need beyond `pip install`: Debian's chromium for the dashboard's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin; [ -x "$BIN/python" ] || BIN="$(dirname "$(command -v python3)")"
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "tools/test.sh: installing Debian's chromium for the browser tests"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true TOKENIZERS_PARALLELISM=false
export PYTHONWARNINGS="ignore::DeprecationWarning"
start=$(date +%s)
# the embedded model is pretrained once (cached under ~/.cache/sae_nb) on all cores, before tests run in parallel
"$BIN/python" -c "from sae_nb.models import embedded_model_dir; print('embedded model:', embedded_model_dir(progress=False))"
"$BIN/nbdev-test" --n-workers "${NBDEV_WORKERS:-2}" --timing
echo "nbdev-test: $(( $(date +%s) - start ))s"
set +e
"$BIN/python" -m pytest tests/ -q -ra "$@"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "pytest: no tests collected"; rc=0; }   # 5 = no tests; not a failure
echo "all tests: $(( $(date +%s) - start ))s"
exit $rc
