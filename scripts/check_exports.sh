#!/usr/bin/env bash
# Checks scripts/export_tf.sh's exports with the built eastrt: `eastrt detect` with models/east.safetensors and
# with each export (training checkpoint, inference checkpoint, frozen .pb, the .onnx) on the example images,
# boxes compared; then TensorFlow's and ONNX Runtime's maps against eastrt's on one seeded image.
# Usage: scripts/check_exports.sh [OUTDIR (default exports/)] [IMAGE_DIR (default examples/images)]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-tf"
[ -x "$venv/bin/python" ] || { echo "no $venv: run tests/fixtures/tf/make_fixtures.sh first" >&2; exit 1; }
out="${1:-$root/exports}"
[ -f "$out/frozen.pb" ] || { echo "no $out/frozen.pb: run scripts/export_tf.sh first" >&2; exit 1; }
exec "$venv/bin/python" "$root/scripts/check_exports.py" "$out" "${2:-$root/examples/images}"
