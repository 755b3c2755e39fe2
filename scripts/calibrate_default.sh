#!/usr/bin/env bash
# Makes the bundled model's shipped calibration caches, models/east.int8.cache and models/east.fp8.cache, on
# the CPU from ICDAR 2015 training-split images (img_1 ..; never the held-out img_251-500), with the
# sensitivity pass that keeps the convolutions whose quantisation alone moves the outputs most in FP16.
# The calibrators were chosen on the GPU by F1 on img_1-40 (gpu_check.sh's qselect phase; docs/QUANTIZATION.md):
#   int8: percentile 99.99, 32 images; fp8: minmax, 64 images. About 10 minutes each on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EASTRT_SHARED:-../shared}
eastrt=${EASTRT:-build/eastrt}
calib=$(mktemp -d)
trap 'rm -rf "$calib"' EXIT
for i in $(seq 1 64); do ln -s "$(realpath "$shared/data/icdar2015/test/images/img_$i.jpg")" "$calib/"; done
"$eastrt" calibrate --model models/east.safetensors --calib "$calib" --images 32 --precision int8 \
  --calibrator percentile --sensitivity --sensitivity-images 2 -o models/east.int8.cache
"$eastrt" calibrate --model models/east.safetensors --calib "$calib" --images 64 --precision fp8 \
  --calibrator minmax --sensitivity --sensitivity-images 2 -o models/east.fp8.cache
