#!/bin/bash
# Builds reduce_test (native/cuda/layout.cu under the CPU emulation of emu.h) and checks launch_reduce's paths
# against float64 loops. No GPU, driver or nvcc; needs g++ ≥ 12 and the CUDA headers (CUDA_HOME, default
# /usr/local/cuda). It checks indexing and the split reduction, not speed.
#   native/cuda/test/emu/layout.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda=$(cd "$here/../.." && pwd)
out=${EMU_BUILD:-/tmp/longshot-emu-layout}
mkdir -p "$out/src"
python3 "$here/to_host.py" "$cuda/layout.cu" "$out/src/layout.cpp"
flags=(-std=c++20 -O2 -pthread -w -include "$here/emu.h" -include "$here/grad_atomic.h" -include "$here/layout_emu.h"
  -I"$out/src" -I"$cuda" -I"${CUDA_HOME:-/usr/local/cuda}/include")
g++ "${flags[@]}" -c "$out/src/layout.cpp" -o "$out/layout.o"
g++ "${flags[@]}" -c "$here/reduce_test.cpp" -o "$out/reduce_test.o"
g++ -std=c++20 -O2 -I"${CUDA_HOME:-/usr/local/cuda}/include" -c "$here/runtime.cpp" -o "$out/runtime.o"
g++ -pthread "$out"/{layout,reduce_test,runtime}.o -o "$out/reduce_test"
"$out/reduce_test"
