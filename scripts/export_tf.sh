#!/usr/bin/env bash
# Exports EAST weights (default: the bundled models/east.safetensors) with real TensorFlow into OUTDIR
# (default: exports/, git-ignored): a training checkpoint with EMA shadows, an inference checkpoint, a frozen
# .pb and its tf2onnx ONNX (opset 13). Uses the .venv-tf of tests/fixtures/tf/make_fixtures.sh (run that and
# make_tf2onnx_fixtures.sh first on a fresh machine). Usage: scripts/export_tf.sh [MODEL.safetensors] [OUTDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-tf"
[ -x "$venv/bin/python" ] || { echo "no $venv: run tests/fixtures/tf/make_fixtures.sh first" >&2; exit 1; }
"$venv/bin/python" -c "import tf2onnx, onnx" 2>/dev/null ||
  { echo "$venv lacks tf2onnx/onnx: run tests/fixtures/tf/make_tf2onnx_fixtures.sh first" >&2; exit 1; }
model="${1:-$root/models/east.safetensors}"
out="${2:-$root/exports}"
[ -f "$model" ] || { echo "no model file $model" >&2; exit 1; }
PYTHONHASHSEED=0 exec "$venv/bin/python" "$root/scripts/export_tf.py" "$model" "$out"
