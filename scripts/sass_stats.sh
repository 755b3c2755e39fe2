#!/usr/bin/env bash
# Per-kernel SASS statistics of CUDA sources, on the development machine (no GPU needed): instructions in
# all, tensor-core mma (HMMA/IMMA/QMMA), ldmatrix (LDSM), local-memory spills (LDL/STL) and registers, for
# sm_90 as the project builds it. The toolkit here has no disassembler, so cuobjdump and nvdisasm come from
# NVIDIA's PyPI wheels, downloaded once into build-sass/tools/.
#
#   scripts/sass_stats.sh src/cuda/conv_tensor_core.cu [more .cu files]
set -euo pipefail
cd "$(dirname "$0")/.."
(( $# > 0 )) || { echo "usage: $0 FILE.cu [FILE.cu ...]" >&2; exit 2; }
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
tools=build-sass/tools
mkdir -p "$tools"
for tool in cuobjdump nvdisasm; do
  [[ -x $tools/$tool ]] && continue
  rm -rf "$tools/download" && mkdir -p "$tools/download"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tools/download" "nvidia-cuda-$tool" ||
    { echo "could not download nvidia-cuda-$tool from PyPI" >&2; exit 1; }
  wheel=$(ls "$tools"/download/*.whl | head -n 1)
  python3 -m zipfile -e "$wheel" "$tools/download/x"
  found=$(find "$tools/download/x" -name "$tool" -type f | head -n 1)
  [[ -n $found ]] || { echo "no $tool in $wheel" >&2; exit 1; }
  cp "$found" "$tools/$tool" && chmod +x "$tools/$tool"
  rm -rf "$tools/download"
done
export NVDISASM_PATH=$PWD/$tools/nvdisasm PATH=$PWD/$tools:$PATH
for source in "$@"; do
  object=build-sass/$(basename "$source" .cu).o
  # wgmma kernels build for sm_90a alone, as CMakeLists.txt builds them.
  arch=90; grep -q "wgmma.cuh" "$source" && arch=90a
  "$nvcc" -O3 -DNDEBUG --generate-code=arch=compute_$arch,code=sm_$arch -std=c++17 -Isrc -Iinclude -Xptxas -v \
    -c "$source" -o "$object" 2> "$object.ptxas" || { cat "$object.ptxas" >&2; exit 1; }
  "$tools/cuobjdump" -sass "$object" > "$object.sass"
  echo "== $source"
  python3 - "$object.sass" "$object.ptxas" <<'EOF'
import re, sys
sass, ptxas = open(sys.argv[1]).read(), open(sys.argv[2]).read()
registers = dict(re.findall(r"Compiling entry function '(\S+)'.*?Used (\d+) registers", ptxas, re.S))
print(f"{'instructions':>12} {'mma':>5} {'ldsm':>5} {'spill':>5} {'regs':>4}  kernel")
for name, body in re.findall(r"Function : (\S+)\n(.*?)(?=\n\s*Function : |\Z)", sass, re.S):
    ops = re.findall(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", body)
    count = lambda *names: sum(op in names for op in ops)
    print(f"{len(ops):>12} {count('HMMA', 'IMMA', 'QMMA', 'HGMMA', 'QGMMA', 'IGMMA'):>5} {count('LDSM'):>5} "
          f"{count('LDL', 'STL'):>5} {registers.get(name, '?'):>4}  {name}")
EOF
done
