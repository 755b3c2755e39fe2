#!/usr/bin/env bash
# Installs the Debian packages eastrt's build and tests need. Idempotent and quiet; fails loudly.
set -euo pipefail

packages=(cmake g++ make pkg-config libopenblas-dev libpolyclipping-dev libprotobuf-dev protobuf-compiler
          nlohmann-json3-dev libgtest-dev libjpeg62-turbo-dev libpng-dev
          libopencv-dnn-dev   # OpenCV DNN: the CPU peer the tests and benchmark compare with
          chromium)           # headless, runs the serve web page's self-test (tests/test_serve.cpp)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo_cmd[@]}" apt-get update -qq >/tmp/eastrt-apt.log 2>&1 ||
     ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/eastrt-apt.log 2>&1; then
    echo "setup: apt-get failed; its log follows" >&2
    tail -n 30 /tmp/eastrt-apt.log >&2
    exit 1
  fi
fi
if command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "setup: CUDA toolkit found; CUDA sources will be compiled"
else
  echo "setup: no CUDA toolkit; building the CPU engine only"
fi
