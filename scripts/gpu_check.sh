#!/usr/bin/env bash
# The GPU engine's check and benchmark in one run ON the GPU machine, from the repository root: configure
# and build (Release, -j16), run the GPU and pass tests, time EAST 672x1280 at batch 1 and 16 in
# fp32/tf32/fp16 with eastrt and with PyTorch, and write logs and JSON lines to $OUT (at most 8 files). Each phase
# has a time limit so that the whole run ends within 9 minutes, with what finished kept.
#
# EASTRT_PREBUILT=DIR skips the build and uses the eastrt and eastrt_tests in DIR/device-bundle.tar.xz
# (built elsewhere, stripped, with the shared libraries the machine may lack, in one archive).
# EASTRT_CHECK_PHASES picks phases (default "tests bench profile eval pipeline serve peer"; also "quant":
# INT8/FP8 against FP16 on the bundled model; "qselect": F1 of the calibration caches in gpu-data/caches on
# the training-split images in gpu-data/select; "tactics": FP16 batch-1 builds profiled one by one; "ncu":
# Nsight Compute on our own kernels at FP16 batch 16).
# `scripts/gpu_check.sh --prepare-carry`, on the development machine, builds build-gpu/, packs the bundle (with
# libnvjpeg.so.13 from the nvidia-nvjpeg wheel, which eastrt opens at run time for the GPU's JPEG decoder),
# copies a held-out ICDAR slice and the PP-OCR model into gpu-data/ and prints the carry list.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --prepare-carry ]]; then
  set -e
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  # EASTRT_BUILD_DIR: a Release build folder to take the binaries from (default build-gpu/, built here).
  bdir=${EASTRT_BUILD_DIR:-build-gpu}
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$bdir" -j"$(nproc)" --target eastrt eastrt_tests
  rm -rf build-gpu/bundle && mkdir -p build-gpu/bundle/device-libs
  strip -o build-gpu/bundle/eastrt "$bdir/eastrt"
  # EASTRT_BUNDLE_TESTS=0 leaves the test program out (a detection-only run with more images).
  [[ ${EASTRT_BUNDLE_TESTS:-1} == 0 ]] || strip -o build-gpu/bundle/eastrt_tests "$bdir/eastrt_tests"
  # Everything but glibc, zlib, libstdc++ and the CUDA libraries (those come from the machine itself).
  ldd build-gpu/bundle/eastrt* | awk '$3 ~ /^\// {print $1, $3}' | sort -u |
    grep -Ev '^(libc|libm|librt|libdl|libpthread|libresolv|libutil|libz|libstdc\+\+|libgcc_s|ld-linux|libcudnn|libcublas|libcublasLt|libcudart)[.-]' |
    while read -r name path; do cp -L "$path" "build-gpu/bundle/device-libs/$name"; done
  # nvJPEG is dlopen'ed, so ldd does not list it: the wheel's copy, downloaded once into build-gpu/nvjpeg/.
  nvjpeg=build-gpu/nvjpeg/libnvjpeg.so.13
  if [[ ! -f $nvjpeg ]]; then
    rm -rf build-gpu/nvjpeg-download && mkdir -p build-gpu/nvjpeg-download build-gpu/nvjpeg
    if python3 -m pip download --quiet --no-deps --only-binary=:all: --dest build-gpu/nvjpeg-download 'nvidia-nvjpeg>=13,<14' &&
       wheel=$(ls build-gpu/nvjpeg-download/*.whl 2>/dev/null | head -n 1) && [[ -n $wheel ]] &&
       member=$(python3 -c 'import sys, zipfile; print(next(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith("/libnvjpeg.so.13")))' "$wheel") &&
       python3 -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' "$wheel" "$member" "$nvjpeg"; then
      echo "libnvjpeg.so.13 from $(basename "$wheel")"
    else
      rm -f "$nvjpeg"
      echo "warning: could not get libnvjpeg.so.13 from the nvidia-nvjpeg wheel; the bundle goes without it (JPEGs decode on the CPU there)" >&2
    fi
    rm -rf build-gpu/nvjpeg-download
  fi
  [[ -f $nvjpeg ]] && cp "$nvjpeg" build-gpu/bundle/device-libs/
  tar -cf - -C build-gpu/bundle . | xz -9 -T"$(nproc)" > build-gpu/device-bundle.tar.xz
  rm -rf build-gpu/bundle
  # Data for the evaluation phase (git-ignored gpu-data/): a held-out ICDAR 2015 slice (never trained on)
  # and the PP-OCRv4 det model, from ../shared.
  shared=${EASTRT_SHARED:-../shared}
  first=${EASTRT_EVAL_FIRST:-251}; last=${EASTRT_EVAL_LAST:-340}
  rm -rf gpu-data && mkdir -p gpu-data/images gpu-data/gt
  for i in $(seq "$first" "$last"); do
    cp "$shared/data/icdar2015/test/images/img_$i.jpg" gpu-data/images/
    cp "$shared/data/icdar2015/test/gt/gt_img_$i.txt" gpu-data/gt/
  done
  [[ -f $shared/models/ppocr/ch_PP-OCRv4_det_infer.onnx ]] && cp "$shared/models/ppocr/ch_PP-OCRv4_det_infer.onnx" gpu-data/
  # More ICDAR 2015 test images for PP-OCRv4 alone (it was not trained on any of them): EASTRT_DB_IMAGES lists
  # ranges "A-B ...". Their detections come back in results.tgz and are scored here with all 500 ground truths.
  if [[ -n ${EASTRT_DB_IMAGES:-} ]]; then
    mkdir -p gpu-data/db-images
    for range in $EASTRT_DB_IMAGES; do
      for i in $(seq "${range%-*}" "${range#*-}"); do cp "$shared/data/icdar2015/test/images/img_$i.jpg" gpu-data/db-images/; done
    done
  fi
  tree=$(git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s | awk '{s+=$1} END {print s+0}')
  total=$((tree + $(stat -c %s build-gpu/device-bundle.tar.xz) + $(du -sb gpu-data | cut -f1)))
  printf 'travels: %.1f MiB of 64 (tree %.1f, bundle %.1f, gpu-data %.1f)\n' "$(echo $total | awk '{print $1/1048576}')" \
    "$(echo $tree | awk '{print $1/1048576}')" "$(stat -c %s build-gpu/device-bundle.tar.xz | awk '{print $1/1048576}')" \
    "$(du -sb gpu-data | cut -f1 | awk '{print $1/1048576}')"
  (( total < 64 * 1048576 - 524288 )) || { echo "too big: set EASTRT_EVAL_LAST lower" >&2; exit 1; }
  echo 'carry: ["build-gpu/device-bundle.tar.xz", "gpu-data"]'
  exit 0
fi
OUT=${OUT:-/tmp/eastrt-gpu-check}
mkdir -p "$OUT"
# At most 8 files come back: the log, tests.log, bench.jsonl, peer.jsonl and results.tgz (everything else).
WORK=/tmp/eastrt-gpu-work
rm -rf "$WORK" && mkdir -p "$WORK"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
BUDGET=${EASTRT_CHECK_SECONDS:-540}
PHASES=" ${EASTRT_CHECK_PHASES:-tests bench profile eval pipeline serve peer} "
want() { [[ $PHASES == *" $1 "* ]]; }
# The network's weights as the bench phase saves them, for the PyTorch peer (which has none without it).
WEIGHTS=/tmp/eastrt-east-weights.safetensors
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
      cmake --build build-device -j16 --target eastrt eastrt_tests" >"$WORK/build.log" 2>&1; then
    echo "built in build-device/"
    grep -E "warning" "$WORK/build.log" | head -n 20
  else
    echo "build failed or ran out of time; its log's end:"
    tail -n 40 "$WORK/build.log"
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
if [[ $BIN != build-device && -f $BIN/device-bundle.tar.xz && ! -x $BIN/eastrt ]]; then
  tar -xJf "$BIN/device-bundle.tar.xz" -C "$BIN" || echo "could not unpack $BIN/device-bundle.tar.xz"
fi
[[ $BIN != build-device && -d $BIN/device-libs ]] && export LD_LIBRARY_PATH=$PWD/$BIN/device-libs:$LD_LIBRARY_PATH
# nvJPEG, which eastrt opens at run time: a build made here takes the carried bundle's copy, else that of an
# nvidia-nvjpeg wheel installed on this machine.
if [[ $BIN == build-device && -f build-gpu/device-bundle.tar.xz ]] &&
   tar -xJf build-gpu/device-bundle.tar.xz -C "$WORK" ./device-libs/libnvjpeg.so.13 2>/dev/null; then
  export LD_LIBRARY_PATH=$WORK/device-libs:$LD_LIBRARY_PATH
fi
NVJPEG_WHEEL=$(python3 -c 'import nvidia.nvjpeg as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null || true)
[[ -n $NVJPEG_WHEEL ]] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$NVJPEG_WHEEL
for d in ${LD_LIBRARY_PATH//:/ }; do [[ -f $d/libnvjpeg.so.13 ]] && { echo "nvJPEG from $d"; break; }; done
"$BIN/eastrt" --version || { echo "the eastrt tool does not start"; ldd "$BIN/eastrt" | grep "not found"; exit 1; }
EASTRT_COMMIT=$("$BIN/eastrt" --version | sed -n 's/.*(commit \(.*\))/\1/p')
export EASTRT_COMMIT

if want tests; then
# EASTRT_TEST_FILTER: another gtest filter (a call that only re-runs some tests); EASTRT_TEST_SECONDS: its limit.
filter=${EASTRT_TEST_FILTER:-Gpu*:Passes*}
phase "tests: $filter"
# 240 s: the cuDNN graph tactics' tests build more plans than the others.
timeout ${EASTRT_TEST_SECONDS:-$(( $(left) > 400 ? 240 : $(left) / 2 ))} "$BIN/eastrt_tests" --gtest_filter="$filter" \
  --gtest_output="xml:$WORK/tests.xml" >"$OUT/tests.log" 2>&1
echo "tests exit status $?"
grep -E -A6 "(: Failure|exception .* thrown)" "$OUT/tests.log" | head -n 80
grep -E "^\[==========\]|^\[  PASSED  \]|^\[  FAILED  \] [A-Za-z]" "$OUT/tests.log" | awk '!seen[$0]++' | head -n 30

fi

if want bench; then
phase "eastrt bench: EAST 672x1280"
# EASTRT_BENCH_PRECISIONS (default "fp32 tf32 fp16") and EASTRT_BENCH_RUNS (default: all of the list below)
# shorten the phase; the first run saves the weights the PyTorch peer reads.
for batch in 1 16; do
  for precision in ${EASTRT_BENCH_PRECISIONS:-fp32 tf32 fp16}; do
    if (( $(left) < 150 )); then echo "skipping batch $batch $precision: too little time left"; continue; fi
    iterations=$(( batch == 1 ? 200 : 40 ))
    extra=()
    [[ -f $WEIGHTS ]] || extra=(--save-weights "$WEIGHTS")
    timeout 150 "$BIN/eastrt" bench --builtin east --input ${batch}x672x1280x3 --precision $precision \
      --batch $batch --iterations $iterations --warmup 10 --cuda-graph --results "$OUT/bench.jsonl" "${extra[@]}" \
      2>&1 | tee -a "$WORK/bench.log"
  done
done
# Tactic selection's stability: FP16 batch 1 built again from scratch, once without cuDNN's graph API
# configurations and once with parallel branches (what each changes), then twice through a timing cache
# (the first fills it, the second must time nothing and pick the same tactics); and FP16 batch 16 without
# the graph configurations and with parallel branches.
for run in ${EASTRT_BENCH_RUNS-2 no-cudnn-graph parallel cache-fill cache-hit b16-no-cudnn-graph b16-parallel}; do
  (( $(left) < 170 )) && { echo "skipping fp16 build $run: too little time left"; continue; }
  extra=()
  batch=1
  [[ $run == cache-* ]] && extra=(--timing-cache "$WORK/timing_cache.json")
  [[ $run == *no-cudnn-graph ]] && extra=(--no-cudnn-graph)
  [[ $run == *-parallel || $run == parallel ]] && extra=(--parallel-branches)
  [[ $run == *no-wgmma ]] && extra=(--no-wgmma)
  [[ $run == b16-* ]] && batch=16
  echo "--- fp16 batch $batch, build $run"
  timeout 90 "$BIN/eastrt" bench --builtin east --input ${batch}x672x1280x3 --precision fp16 --batch $batch \
    --iterations $(( batch == 1 ? 200 : 40 )) --warmup 10 --cuda-graph --results "$OUT/bench.jsonl" "${extra[@]}" 2>&1 |
    tee -a "$WORK/bench.log" | tail -n 4
done
# PP-OCRv4 det at the size its detector runs ICDAR 2015's 1280x720 images (longer side 960), and the launch
# overhead (EASTRT_BENCH_EXTRA=0 leaves both out).
if [[ ${EASTRT_BENCH_EXTRA:-1} != 0 && -f gpu-data/ch_PP-OCRv4_det_infer.onnx ]]; then
  for precision in fp32 fp16; do
    (( $(left) < 150 )) && { echo "skipping PP-OCR $precision: too little time left"; continue; }
    timeout 90 "$BIN/eastrt" bench --model gpu-data/ch_PP-OCRv4_det_infer.onnx --input 1x544x960x3 --precision $precision \
      --batch 1 --iterations 200 --warmup 10 --cuda-graph --results "$OUT/bench.jsonl" 2>&1 | tee -a "$WORK/bench.log"
  done
fi
# Launch overhead: the same FP16 batch-1 engine without the CUDA graph.
if [[ ${EASTRT_BENCH_EXTRA:-1} != 0 ]] && (( $(left) > 150 )); then
  timeout 120 "$BIN/eastrt" bench --builtin east --input 1x672x1280x3 --precision fp16 --batch 1 --iterations 200 \
    --results "$OUT/bench.jsonl" 2>&1 | tee -a "$WORK/bench.log"
fi

fi

if want profile; then
  phase "per-layer profiles (eager launches)"
  # Every tactic tried for FP16 batch 1, with its time (into results.tgz).
  timeout 60 "$BIN/eastrt" build --builtin east --input 1x672x1280x3 --precision fp16 --max-batch 1 --verbose \
    -o "$WORK/fp16_b1.plan" > "$WORK/tactics_fp16_b1.log" 2>&1 || echo "verbose build failed"
  for config in "fp16 1" "tf32 1" "fp16 16"; do
    set -- $config
    (( $(left) < 60 )) && { echo "skipping profile $1 batch $2: too little time left"; continue; }
    timeout 90 "$BIN/eastrt" bench --builtin east --input ${2}x672x1280x3 --precision $1 --batch $2 --iterations 30 \
      --warmup 5 --profile --profile-json "$WORK/profile_${1}_b${2}.json" 2>&1 | head -n 60
    [[ $1 == fp16 ]] && python3 bench/roofline.py "$WORK/profile_${1}_b${2}.json" 2>&1 | head -n 30
  done
  if [[ -f gpu-data/ch_PP-OCRv4_det_infer.onnx ]] && (( $(left) > 60 )); then
    timeout 60 "$BIN/eastrt" bench --model gpu-data/ch_PP-OCRv4_det_infer.onnx --input 1x544x960x3 --precision fp16 \
      --batch 1 --iterations 30 --warmup 5 --profile --profile-json "$WORK/profile_ppocr_fp16_b1.json" 2>&1 | head -n 40
  fi
fi

if want ncu; then
  # Nsight Compute on our own kernels at FP16 batch 16, one run for each name in EASTRT_NCU_KERNELS (default the
  # conv/max-pool and tensor-core 3x3 kernels), its first launch: the builder's timing launch, the shape the
  # engine runs. --clock-control none leaves the GPU's clocks as they are. Reports into results.tgz.
  # EASTRT_NCU_TESTS=FILTER profiles those tests' launches instead (eastrt_tests), EASTRT_NCU_SKIP of them
  # skipped first (default 0); SourceCounters names the instructions the warps stall at.
  if [[ -n ${EASTRT_NCU_TESTS:-} ]]; then
    target=("$BIN/eastrt_tests" --gtest_filter="$EASTRT_NCU_TESTS")
  else
    target=("$BIN/eastrt" bench --builtin east --input 16x672x1280x3 --precision fp16 --batch 16 --iterations 2 --warmup 1)
  fi
  command -v ncu >/dev/null || PATH=$PATH:$(dirname "$(ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -n 1)")
  for kernel in ${EASTRT_NCU_KERNELS:-conv_max_pool_kernel tensor_core_conv_kernel}; do
    phase "Nsight Compute: $kernel"
    if ! command -v ncu >/dev/null || (( $(left) < 90 )); then echo "skipped: no ncu or too little time left"; continue; fi
    timeout 120 ncu --clock-control none -k "regex:$kernel" --launch-skip "${EASTRT_NCU_SKIP:-0}" --launch-count 1 \
      --section SpeedOfLight --section SourceCounters \
      --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
      --section WarpStateStats --section SchedulerStats --section InstructionStats --page details --print-units base \
      --metrics 'regex:smsp__warp_issue_stalled_.*_per_warp_active\.pct' \
      "${target[@]}" > "$WORK/ncu_$kernel.log" 2>&1 || echo "ncu exited non-zero"
    grep -v -E "^\s*$|^built-in|^precision|^fp16 |^weights" "$WORK/ncu_$kernel.log" | head -n 150
  done
fi

if want tactics; then
  # Why FP16 batch-1 builds differ (1291-1375 images/s in one call): EASTRT_TACTIC_BUILDS builds (default 4),
  # each replayed, then profiled step by step with its tactics and their build-time figures (into
  # results.tgz as tactics_N.json), to be compared layer by layer.
  builds=${EASTRT_TACTIC_BUILDS:-4}
  phase "FP16 batch 1 tactics over $builds builds"
  for i in $(seq 1 "$builds"); do
    (( $(left) < 60 )) && { echo "skipping tactics build $i: too little time left"; continue; }
    timeout 90 "$BIN/eastrt" bench --builtin east --input 1x672x1280x3 --precision fp16 --batch 1 --iterations 200 \
      --warmup 10 --cuda-graph --profile-json "$WORK/tactics_$i.json" --results "$WORK/tactics.jsonl" 2>&1 | tail -n 3
  done
fi

if want quant && [[ -f models/east.safetensors ]]; then
  phase "INT8 and FP8 against FP16: the bundled EAST with its calibration caches, 672x1280"
  # EASTRT_QUANT_PRECISIONS: the precisions of the first two parts (default "fp16 int8 fp8"). INT8 builds
  # time cuDNN's 8-bit graphs, whose kernels compile at run time: their limits are the longer ones.
  for batch in ${EASTRT_QUANT_BATCHES:-16 1}; do
    for precision in ${EASTRT_QUANT_PRECISIONS:-fp16 int8 fp8}; do
      (( $(left) < 90 )) && { echo "skipping $precision batch $batch: too little time left"; continue; }
      cache=()
      [[ $precision != fp16 ]] && cache=(--calib-cache models/east.$precision.cache)
      timeout 200 "$BIN/eastrt" bench --model models/east.safetensors --input ${batch}x672x1280x3 --precision $precision \
        "${cache[@]}" --batch $batch --iterations $(( batch == 1 ? 200 : 40 )) --warmup 10 --cuda-graph \
        --results "$OUT/bench.jsonl" 2>&1 | tee -a "$WORK/bench.log" | tail -n 4
    done
  done
  # The bundled caches with every convolution they quantise in 8 bits (--all-8bit), against the default
  # above (where a layer faster in FP16 stays there).
  for precision in ${EASTRT_QUANT_PRECISIONS:-int8 fp8}; do
    [[ $precision == fp16 ]] && continue
    (( $(left) < 90 )) && continue
    echo "--- $precision batch 16, --all-8bit"
    timeout 200 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision $precision \
      --calib-cache models/east.$precision.cache --all-8bit --batch 16 --iterations 40 --warmup 10 --cuda-graph \
      --results "$OUT/bench.jsonl" 2>&1 | tee -a "$WORK/bench.log" | tail -n 4
  done
  # Other INT8/FP8 caches for the bundled model (EASTRT_QUANT_CACHES: files, e.g. gpu-data/caches/x.cache), by
  # default and --all-8bit at batch 16, and the default engine's profile: what a calibration that keeps
  # fewer layers gives.
  for cache in ${EASTRT_QUANT_CACHES:-}; do
    [[ -f $cache ]] || { echo "no cache $cache"; continue; }
    precision=$(sed -n 's/^precision //p' "$cache")
    name=$(basename "$cache" .cache)
    for mode in default --all-8bit; do
      (( $(left) < 90 )) && { echo "skipping $cache $mode: too little time left"; continue; }
      echo "--- $name ($precision) batch 16, $mode"
      flags=()
      [[ $mode == --all-8bit ]] && flags=(--all-8bit)
      timeout 200 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision $precision \
        --calib-cache "$cache" "${flags[@]}" --batch 16 --iterations 40 --warmup 10 --cuda-graph \
        --results "$OUT/bench.jsonl" 2>&1 | tee -a "$WORK/bench.log" | tail -n 4
    done
    if want profile && (( $(left) > 90 )); then
      timeout 120 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision $precision \
        --calib-cache "$cache" --all-8bit --batch 16 --iterations 20 --warmup 5 --profile \
        --profile-json "$WORK/profile_${name}_all8bit_b16.json" 2>&1 | tail -n 3
    fi
  done
  # Where the 8-bit kernels stand against FP16 layer by layer (EASTRT_QUANT_DETAIL=1): the INT8 build's
  # timing log (every candidate with its time, FP16's too) and the --all-8bit engine's profile.
  if [[ ${EASTRT_QUANT_DETAIL:-0} == 1 ]] && (( $(left) > 120 )); then
    echo "--- int8 batch 16, --all-8bit --no-cudnn-graph (our 8-bit kernel alone, against cuDNN's graphs above)"
    timeout 120 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision int8 \
      --calib-cache models/east.int8.cache --all-8bit --no-cudnn-graph --batch 16 --iterations 40 --warmup 10 \
      --cuda-graph --results "$OUT/bench.jsonl" 2>&1 | tee -a "$WORK/bench.log" | tail -n 3
    echo "--- int8 batch 16: the build's timing log and the --all-8bit profile"
    timeout 200 "$BIN/eastrt" build --model models/east.safetensors --input 16x672x1280x3 --precision int8 \
      --calib-cache models/east.int8.cache --max-batch 16 --verbose -o "$WORK/int8_b16.plan" \
      2> "$WORK/int8_build_b16.log" | tail -n 3
    timeout 200 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision int8 \
      --calib-cache models/east.int8.cache --all-8bit --batch 16 --iterations 20 --warmup 5 --profile \
      --profile-json "$WORK/profile_int8_all8bit_b16.json" 2>&1 | tail -n 3
  fi
  # The 8-bit kernel alone: caches that quantise every convolution it takes (gpu-data/caches/*_all.cache).
  for cache in gpu-data/caches/*_all.cache; do
    [[ -f $cache ]] || continue
    (( $(left) < 120 )) && { echo "skipping $cache: too little time left"; continue; }
    precision=$(sed -n 's/^precision //p' "$cache")
    echo "--- $(basename "$cache"), batch 16"
    timeout 90 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision $precision \
      --calib-cache "$cache" --all-8bit --batch 16 --iterations 40 --warmup 10 --cuda-graph --results "$OUT/bench.jsonl" 2>&1 |
      tee -a "$WORK/bench.log" | tail -n 3
  done
  for precision in int8 fp8; do
    { (( $(left) < 90 )) || ! want profile; } && continue  # the profiles with the profile phase only
    timeout 90 "$BIN/eastrt" bench --model models/east.safetensors --input 16x672x1280x3 --precision $precision \
      --calib-cache models/east.$precision.cache --batch 16 --iterations 20 --warmup 5 --profile \
      --profile-json "$WORK/profile_${precision}_b16.json" 2>&1 | head -n 80
  done
fi

if want ncu; then
  # Nsight Compute on our wgmma kernels at EAST's batch-16 shapes, where the machine has it: the first
  # launches of each while the builds time their candidates (what the 8-bit and FP16 3x3 kernels wait on).
  ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute*/ncu 2>/dev/null | head -n 1 || true)
  phase "Nsight Compute: ${ncu:-not on this machine}"
  if [[ -n $ncu ]]; then
    sections=(--section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats
              --section MemoryWorkloadAnalysis --section SchedulerStats)
    timeout 150 "$ncu" "${sections[@]}" --kernel-name regex:'quant_conv_wgmma_kernel|quant_conv_kernel' --launch-count 8 \
      "$BIN/eastrt" build --model models/east.safetensors --input 16x672x1280x3 --precision int8 \
      --calib-cache models/east.int8.cache --max-batch 16 --all-8bit -o "$WORK/ncu_int8.plan" > "$WORK/ncu_int8.txt" 2>&1
    echo "ncu int8 exit status $?"; grep -E "quant_conv|Duration|Throughput|Stall|Warp Cycles" "$WORK/ncu_int8.txt" | head -n 40
    timeout 120 "$ncu" "${sections[@]}" --kernel-name regex:'tensor_core_wgmma_conv_kernel|conv_max_pool_wgmma_kernel' \
      --launch-count 4 "$BIN/eastrt" build --builtin east --input 16x672x1280x3 --precision fp16 --max-batch 16 \
      -o "$WORK/ncu_fp16.plan" > "$WORK/ncu_fp16.txt" 2>&1
    echo "ncu fp16 exit status $?"
  fi
fi

sel=${EASTRT_SELECT_DIR:-gpu-data/select}
if want qselect && [[ -d $sel/images ]]; then
  # Choosing a calibration for the bundled model on training-split images (EASTRT_SELECT_DIR, default
  # gpu-data/select: ICDAR 2015 img_1.. with their gt),
  # never on the held-out ones: F1 of every cache in gpu-data/caches against FP32 and FP16.
  phase "calibration choice on $(ls $sel/images | wc -l) training-split images"
  for precision in fp32 fp16; do
    timeout 90 "$BIN/eastrt" detect --device gpu --precision $precision --out /tmp/sel_$precision --force \
      $sel/images 2>&1 | tail -n 1
    echo "select $precision: $("$BIN/eastrt" eval --gt $sel/gt --det /tmp/sel_$precision --json 2>&1)"
  done
  for cache in gpu-data/caches/*.cache; do
    (( $(left) < 40 )) && { echo "skipping $cache: too little time left"; continue; }
    name=$(basename "$cache" .cache)
    precision=$(sed -n 's/^precision //p' "$cache")
    timeout 90 "$BIN/eastrt" detect --device gpu --precision $precision --calib-cache "$cache" --out "/tmp/sel_$name" \
      --force $sel/images 2>&1 | tail -n 1
    result=$("$BIN/eastrt" eval --gt $sel/gt --det "/tmp/sel_$name" --json 2>&1)
    echo "select $name: $result"
    hmean=$(sed -n 's/.*"hmean": *\([0-9.e-]*\).*/\1/p' <<< "$result")
    echo "$precision ${hmean:-0} $cache" >> "$WORK/select.txt"
  done
  # EASTRT_SELECT_APPLY=1: the best cache of each precision on these images becomes the model's shipped one
  # (models/east.<precision>.cache) for the phases after this one; the choice is printed.
  if [[ ${EASTRT_SELECT_APPLY:-0} == 1 && -f $WORK/select.txt ]]; then
    for precision in int8 fp8; do
      best=$(awk -v p=$precision '$1 == p' "$WORK/select.txt" | sort -k2,2gr -s | head -n 1)
      [[ -n $best ]] || continue
      echo "chosen for $precision (hmean on the training-split images): $best"
      cp "${best##* }" models/east.$precision.cache
    done
  fi
fi

if want eval && [[ -d gpu-data/images ]]; then
  phase "detection on the GPU: the bundled EAST and PP-OCRv4 on $(ls gpu-data/images | wc -l) held-out ICDAR 2015 images"
  # EASTRT_EVAL_PRECISIONS: e.g. "fp32 tf32 fp16 int8 fp8" (int8/fp8 with the bundled model's calibration cache);
  # EASTRT_EVAL_BATCH: the batch detect runs (default 1; an INT8 engine built for 16 may be another engine).
  for precision in ${EASTRT_EVAL_PRECISIONS:-fp16 fp32}; do
    [[ -f models/east.safetensors ]] || { echo "skipping EAST: models/east.safetensors did not travel"; break; }
    (( $(left) < 45 )) && { echo "skipping EAST $precision: too little time left"; continue; }
    cache=()
    [[ $precision == int8 || $precision == fp8 ]] && cache=(--calib-cache models/east.$precision.cache)
    timeout 200 "$BIN/eastrt" detect --device gpu --precision $precision "${cache[@]}" --batch ${EASTRT_EVAL_BATCH:-1} \
      --out /tmp/east_$precision --force gpu-data/images 2>&1 | tail -n 2
    echo "EAST $precision: $("$BIN/eastrt" eval --gt gpu-data/gt --det /tmp/east_$precision --json 2>&1)"
    cp -r /tmp/east_$precision "$WORK/"
  done
  # EASTRT_EVAL_DB=0 leaves PP-OCRv4 out.
  if [[ -f gpu-data/ch_PP-OCRv4_det_infer.onnx && ${EASTRT_EVAL_DB:-1} != 0 ]]; then
    for precision in fp16 fp32; do
      (( $(left) < 45 )) && { echo "skipping PP-OCR $precision: too little time left"; continue; }
      timeout 150 "$BIN/eastrt" detect --model gpu-data/ch_PP-OCRv4_det_infer.onnx --device gpu --precision $precision \
        --out /tmp/db_$precision --force gpu-data/images 2>&1 | tail -n 2
      if [[ -d gpu-data/db-images ]]; then
        timeout 150 "$BIN/eastrt" detect --model gpu-data/ch_PP-OCRv4_det_infer.onnx --device gpu --precision $precision \
          --out "$WORK/dbx_$precision" --force gpu-data/db-images 2>&1 | tail -n 2
      fi
      echo "PP-OCR $precision: $("$BIN/eastrt" eval --gt gpu-data/gt --det /tmp/db_$precision --json 2>&1)"
      cp -r /tmp/db_$precision "$WORK/"
    done
  fi
fi

if want pipeline && [[ -d gpu-data/images ]] && (( $(left) > 90 )); then
  phase "eastrt detect --bench: the overlapped pipeline (fp16), JPEGs decoded by libjpeg (cpu) and by nvJPEG beside it (auto)"
  # EASTRT_PIPELINE_SETS: the folders to run (default: the held-out slice six times over).
  read -r -a sets <<< "${EASTRT_PIPELINE_SETS:-gpu-data/images gpu-data/images gpu-data/images gpu-data/images gpu-data/images gpu-data/images}"
  # batch, contexts in flight, decoding threads (0: half the cores); EASTRT_PIPELINE_CONFIGS overrides.
  for config in ${EASTRT_PIPELINE_CONFIGS:-"16,3,0" "16,1,0" "8,3,0"}; do
    IFS=, read -r b f w <<< "$config"
    for decoder in ${EASTRT_PIPELINE_DECODERS:-cpu auto hybrid}; do
      (( $(left) < 60 )) && { echo "skipping batch $b, $f in flight, $w workers, decoder $decoder: too little time left"; continue; }
      echo "--- batch $b, $f in flight, $w workers, decoder $decoder"
      timeout 120 "$BIN/eastrt" detect --bench --device gpu --precision fp16 --batch $b --in-flight $f --workers $w \
        --decoder $decoder --record "$OUT/bench.jsonl" "${sets[@]}" 2>&1 | tail -n 15
    done
  done
  # LANMS on the GPU against LANMS on the CPU threads (the runs above), batch 16, 3 in flight; and its F1.
  for decoder in ${EASTRT_PIPELINE_LANMS_DECODERS:-auto cpu}; do
    (( $(left) < 60 )) && { echo "skipping LANMS on the GPU with decoder $decoder: too little time left"; continue; }
    echo "--- batch 16, 3 in flight, decoder $decoder, LANMS on the GPU"
    timeout 120 "$BIN/eastrt" detect --bench --device gpu --precision fp16 --batch 16 --in-flight 3 --decoder $decoder \
      --lanms gpu --record "$OUT/bench.jsonl" "${sets[@]}" 2>&1 | tail -n 15
  done
  if (( $(left) > 60 )); then
    timeout 90 "$BIN/eastrt" detect --device gpu --precision fp16 --batch 16 --lanms gpu --out /tmp/east_fp16_lanms \
      --force gpu-data/images 2>&1 | tail -n 1
    echo "EAST fp16 batch 16, LANMS on the GPU: $("$BIN/eastrt" eval --gt gpu-data/gt --det /tmp/east_fp16_lanms --json 2>&1)"
  fi
  if (( $(left) > 60 )); then
    timeout 90 "$BIN/eastrt" detect --bench --cpu-decode --device gpu --precision fp16 --batch 16 \
      --record "$OUT/bench.jsonl" "${sets[@]}" 2>&1 | tail -n 12
    # Batch 16 on three streams must find what batch 1 found (the eval phase's /tmp/east_fp16).
    timeout 90 "$BIN/eastrt" detect --device gpu --precision fp16 --batch 16 --out /tmp/east_fp16_b16 --force \
      gpu-data/images 2>&1 | tail -n 1
    echo "EAST fp16 batch 16: $("$BIN/eastrt" eval --gt gpu-data/gt --det /tmp/east_fp16_b16 --json 2>&1)"
    [[ -d /tmp/east_fp16 ]] && echo "result files differing from batch 1: $(diff -rq /tmp/east_fp16 /tmp/east_fp16_b16 | grep -c txt)"
    [[ -d /tmp/east_fp16_lanms ]] &&
      echo "result files differing with LANMS on the GPU: $(diff -rq /tmp/east_fp16_lanms /tmp/east_fp16_b16 | grep -c txt)"
  fi
fi

if want serve && (( $(left) > 90 )); then
  phase "eastrt serve on the GPU (bundled model, fp16) under eastrt loadtest, 64 clients, decoders cpu, auto and hybrid"
  # The server runs the pipeline of detect (engines per input size, built on first use): --warmup builds the
  # loadtest image's engine (img_251: 672x1280, the bench phase's size) before it listens.
  image=$(ls gpu-data/images/*.jpg 2>/dev/null | head -n 1)
  get() { python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:18080$1', timeout=2).read().decode())"; }
  for decoder in ${EASTRT_SERVE_DECODERS:-cpu auto hybrid}; do
    (( $(left) < 50 )) && { echo "skipping serve with decoder $decoder: too little time left"; continue; }
    echo "--- serve --decoder $decoder"
    "$BIN/eastrt" serve --precision fp16 --port 18080 --max-batch 16 --max-delay-ms 4 --streams 3 --queue 256 \
      --decoder $decoder ${EASTRT_SERVE_FLAGS:-} \
      ${image:+--warmup "$image"} > "$WORK/serve_$decoder.log" 2>&1 &
    server=$!
    for _ in $(seq 120); do get /healthz >/dev/null 2>&1 && break; sleep 0.5; done
    timeout $(( ${EASTRT_LOADTEST_SECONDS:-20} + 25 )) "$BIN/eastrt" loadtest --port 18080 --clients 64 --requests ${EASTRT_LOADTEST_REQUESTS:-3000} --duration-s ${EASTRT_LOADTEST_SECONDS:-20} \
      ${image:+--image "$image"} 2>&1 | tee -a "$WORK/loadtest.log"
    get /metrics 2>/dev/null | grep -vE "^#" | grep -E "batch|responses|stage|expired|decoded" | head -n 40
    kill -TERM $server; wait $server; echo "serve exit status $?"
    grep -m1 "listening" "$WORK/serve_$decoder.log"
    tail -n 3 "$WORK/serve_$decoder.log"
  done
fi

if want peer; then
phase "PyTorch peer"
if [[ -f $WEIGHTS ]] && (( $(left) > 40 )); then
  timeout $(( $(left) - 20 )) python3 bench/peer_pytorch.py --weights "$WEIGHTS" --batches 1 16 --height 672 \
    --width 1280 --iterations 30 --deadline $(( $(left) - 90 )) --results "$OUT/peer.jsonl" 2>&1 | tee "$WORK/peer.log"
else
  echo "skipped: no weights file or too little time left"
fi
fi

phase "summary"
python3 - "$OUT/bench.jsonl" "$OUT/peer.jsonl" <<'EOF' || true
import sys
sys.path.insert(0, "bench")
from speed_table import read_rows
rows = read_rows(sys.argv[1:])
print(f"{'tool':<16} {'mode':<14} {'prec':<5} {'batch':>5} {'median ms':>10} {'images/s':>10}")
for r in rows:
    if "tool" not in r:  # detect --bench lines: their own table is in the log
        continue
    mode = r.get("mode", "graph" if r.get("cuda_graph") else "launches")
    print(f"{r['tool']:<16} {mode:<14} {r['precision']:<5} {r['batch']:>5} {r['median_ms']:>10.3f} {r['images_per_s']:>10.1f}")
EOF
echo
python3 bench/speed_table.py "$OUT/bench.jsonl" "$OUT/peer.jsonl" || true
# Plans are tens of MiB and come back under 16 MiB only without them.
tar -czf "$OUT/results.tgz" --exclude='*.plan' -C "$WORK" . 2>/dev/null
echo "done in $SECONDS s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
