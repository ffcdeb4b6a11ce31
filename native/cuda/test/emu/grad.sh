#!/bin/bash
# Builds grad_test (native/cuda/grad.cu under the CPU emulation of emu.h) and checks every launch function of
# grad.cu against the CPU backend on small cases (grad_cases.ts). No GPU, driver or nvcc; needs g++ ≥ 12 and the
# CUDA headers (CUDA_HOME, default /usr/local/cuda). It checks indexing, barriers and warp collectives, not speed.
#   native/cuda/test/emu/grad.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda=$(cd "$here/../.." && pwd)
out=${EMU_BUILD:-/tmp/longshot-emu-grad}
mkdir -p "$out/src"
python3 "$here/to_host.py" "$cuda/grad.cu" "$out/src/grad.cpp"
flags=(-std=c++20 -O2 -pthread -w -include "$here/emu.h" -include "$here/grad_atomic.h" -I"$out/src" -I"$cuda"
  -I"${CUDA_HOME:-/usr/local/cuda}/include")
g++ "${flags[@]}" -c "$out/src/grad.cpp" -o "$out/grad.o"
g++ "${flags[@]}" -c "$here/grad_test.cpp" -o "$out/grad_test.o"
g++ -std=c++20 -O2 -I"${CUDA_HOME:-/usr/local/cuda}/include" -c "$here/runtime.cpp" -o "$out/runtime.o"
g++ -pthread "$out"/{grad,grad_test,runtime}.o -o "$out/grad_test"
cd "$cuda/../.." && GRAD_TEST="$out/grad_test" node --import tsx "$here/grad_cases.ts"
