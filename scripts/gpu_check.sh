#!/usr/bin/env bash
# The GPU engine's check and benchmark in one run ON the GPU machine, from the repository root: configure
# and build (Release, -j16), run the GPU and pass tests, time EAST 672x1280 at batch 1 and 16 in
# fp32/tf32/fp16 with eastrt and with PyTorch, and write logs and JSON lines to $OUT (at most 8 files). Each phase
# has a time limit so that the whole run ends within 9 minutes, with what finished kept.
#
# EASTRT_PREBUILT=DIR skips the build and uses DIR/eastrt and DIR/eastrt_tests (built elsewhere and carried,
# with DIR/device-libs.tar.xz holding shared libraries the machine may lack); the build falls back to them
# on its own when configuring or compiling here fails and they are present in build-gpu/.
# `scripts/gpu_check.sh --prepare-carry`, on the development machine, builds build-gpu/ and packs those
# libraries, and prints the carry list for the device call.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --prepare-carry ]]; then
  set -e
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-gpu -j"$(nproc)" --target eastrt eastrt_tests
  rm -rf build-gpu/device-libs && mkdir -p build-gpu/device-libs
  # Everything but glibc, zlib, libstdc++ and the CUDA libraries (those come from the machine itself).
  ldd build-gpu/eastrt_tests build-gpu/eastrt | awk '$3 ~ /^\// {print $1, $3}' | sort -u |
    grep -Ev '^(libc|libm|librt|libdl|libpthread|libresolv|libutil|libz|libstdc\+\+|libgcc_s|ld-linux|libcudnn|libcublas|libcudart)[.-]' |
    while read -r name path; do cp -L "$path" "build-gpu/device-libs/$name"; done
  tar -cJf build-gpu/device-libs.tar.xz -C build-gpu device-libs
  rm -rf build-gpu/device-libs
  du -ch build-gpu/eastrt build-gpu/eastrt_tests build-gpu/device-libs.tar.xz | tail -n 1
  echo 'carry: ["build-gpu/eastrt", "build-gpu/eastrt_tests", "build-gpu/device-libs.tar.xz"]'
  exit 0
fi
OUT=${OUT:-/tmp/eastrt-gpu-check}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
BUDGET=${EASTRT_CHECK_SECONDS:-540}
left() { echo $((BUDGET - SECONDS)); }
phase() { echo; echo "=== $* ($(left) s left) ==="; }
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1

phase "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
nvcc --version | tail -n 2 || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' || true

# cuDNN and cuBLAS: the toolkit's, else those of PyTorch's nvidia-* wheels.
if [[ -z ${CUDNN_ROOT:-} ]]; then
  if [[ -f /usr/local/cuda/include/cudnn.h ]]; then
    CUDNN_ROOT=/usr/local/cuda
  else
    CUDNN_ROOT=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  fi
fi
export CUDNN_ROOT
CUBLAS_LIB=$(python3 -c 'import nvidia.cublas as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null || true)
export LD_LIBRARY_PATH=${CUDNN_ROOT:+$CUDNN_ROOT/lib:$CUDNN_ROOT/lib64:}${CUBLAS_LIB:+$CUBLAS_LIB:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
echo "cuDNN from ${CUDNN_ROOT:-nowhere}"

BIN=build-device
if [[ -n ${EASTRT_PREBUILT:-} ]]; then
  BIN=$EASTRT_PREBUILT
else
  phase "build (Release, -j16)"
  if timeout $(( $(left) > 330 ? 300 : $(left) - 30 )) bash -c "
      cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DEASTRT_TESTS=ON ${CUDNN_ROOT:+-DCUDNN_ROOT=$CUDNN_ROOT} &&
      cmake --build build-device -j16 --target eastrt eastrt_tests" >"$OUT/build.log" 2>&1; then
    echo "built in build-device/"
    grep -E "warning" "$OUT/build.log" | head -n 20
  else
    echo "build failed or ran out of time; its log's end:"
    tail -n 40 "$OUT/build.log"
    chmod +x build-gpu/eastrt build-gpu/eastrt_tests 2>/dev/null
    if [[ -x build-gpu/eastrt && -x build-gpu/eastrt_tests ]]; then
      echo "falling back to the carried build-gpu/ binaries"
      BIN=build-gpu
    else
      echo "no carried binaries in build-gpu/ either: stopping"
      exit 1
    fi
  fi
fi
if [[ $BIN != build-device && -f $BIN/device-libs.tar.xz && ! -d $BIN/device-libs ]]; then
  tar -xJf "$BIN/device-libs.tar.xz" -C "$BIN" || echo "could not unpack $BIN/device-libs.tar.xz"
fi
[[ $BIN != build-device && -d $BIN/device-libs ]] && export LD_LIBRARY_PATH=$PWD/$BIN/device-libs:$LD_LIBRARY_PATH
"$BIN/eastrt" --version || { echo "the eastrt tool does not start"; ldd "$BIN/eastrt" | grep "not found"; exit 1; }

phase "tests: Gpu*:Passes*"
timeout $(( $(left) > 300 ? 180 : $(left) / 2 )) "$BIN/eastrt_tests" --gtest_filter='Gpu*:Passes*' \
  --gtest_output="xml:$OUT/tests.xml" >"$OUT/tests.log" 2>&1
echo "tests exit status $?"
grep -E -A6 "(: Failure|exception .* thrown)" "$OUT/tests.log" | head -n 80
grep -E "^\[==========\]|^\[  PASSED  \]|^\[  FAILED  \] [A-Za-z]" "$OUT/tests.log" | awk '!seen[$0]++' | head -n 30

phase "eastrt bench: EAST 672x1280"
WEIGHTS=/tmp/eastrt-east-weights.safetensors
for batch in 1 16; do
  for precision in fp32 tf32 fp16; do
    if (( $(left) < 150 )); then echo "skipping batch $batch $precision: too little time left"; continue; fi
    iterations=$(( batch == 1 ? 200 : 40 ))
    extra=()
    [[ $batch == 1 && $precision == fp32 ]] && extra=(--save-weights "$WEIGHTS")
    timeout 150 "$BIN/eastrt" bench --builtin east --input ${batch}x672x1280x3 --precision $precision \
      --batch $batch --iterations $iterations --warmup 10 --cuda-graph --results "$OUT/bench.jsonl" "${extra[@]}" \
      2>&1 | tee -a "$OUT/bench.log"
  done
done
# Launch overhead: the same FP16 batch-1 engine without the CUDA graph.
if (( $(left) > 150 )); then
  timeout 120 "$BIN/eastrt" bench --builtin east --input 1x672x1280x3 --precision fp16 --batch 1 --iterations 200 \
    --results "$OUT/bench.jsonl" 2>&1 | tee -a "$OUT/bench.log"
fi

phase "PyTorch peer"
if [[ -f $WEIGHTS ]] && (( $(left) > 40 )); then
  timeout $(( $(left) - 20 )) python3 bench/peer_pytorch.py --weights "$WEIGHTS" --batches 1 16 --height 672 \
    --width 1280 --iterations 30 --deadline $(( $(left) - 90 )) --results "$OUT/peer.jsonl" 2>&1 | tee "$OUT/peer.log"
else
  echo "skipped: no weights file or too little time left"
fi

phase "summary"
python3 - "$OUT/bench.jsonl" "$OUT/peer.jsonl" <<'EOF' || true
import json, sys
rows = []
for path in sys.argv[1:]:
    try:
        rows += [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        pass
print(f"{'tool':<16} {'mode':<14} {'prec':<5} {'batch':>5} {'median ms':>10} {'images/s':>10}")
for r in rows:
    mode = r.get("mode", "graph" if r.get("cuda_graph") else "launches")
    print(f"{r['tool']:<16} {mode:<14} {r['precision']:<5} {r['batch']:>5} {r['median_ms']:>10.3f} {r['images_per_s']:>10.1f}")
EOF
echo "done in $SECONDS s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
