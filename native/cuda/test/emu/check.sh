#!/bin/bash
# Builds one CUDA source of native/cuda under the CPU emulation of emu.h and checks it without a GPU, driver or
# nvcc (needs g++ ≥ 12 and the CUDA headers: CUDA_HOME, default /usr/local/cuda). It checks indexing, barriers,
# warp collectives and split reductions, not speed.
#   native/cuda/test/emu/check.sh grad     every launch function of grad.cu against the CPU backend (grad_cases.ts)
#   native/cuda/test/emu/check.sh layout   layout.cu's launch_reduce against float64 loops (reduce_test.cpp)
set -euo pipefail
unit=${1:?usage: check.sh grad|layout}
here=$(cd "$(dirname "$0")" && pwd)
cuda=$(cd "$here/../.." && pwd)
out=${EMU_BUILD:-/tmp/longshot-emu-$unit}
case $unit in
  grad) test=grad_test extra=() ;;
  layout) test=reduce_test extra=(-include "$here/layout_emu.h") ;;
  *) echo "check.sh: unknown unit '$unit' (grad or layout)" >&2; exit 2 ;;
esac
mkdir -p "$out/src"
cp "$here/mma_util.cuh" "$out/src/"  # the PTX stand-ins, found before native/cuda's own (grad.cu's tensor-core kernels)
cp "$cuda/mma_tiles.cuh" "$out/src/"  # beside them, so that its own include of mma_util.cuh finds the stand-ins
python3 "$here/to_host.py" "$cuda/$unit.cu" "$out/src/$unit.cpp"
# LS_NORM_BLOCKS: few blocks, so that small cases give the norm backwards' warps several rows each.
flags=(-std=c++20 -O2 -pthread -w -DLS_NORM_BLOCKS=4 -include "$here/emu.h" -include "$here/grad_atomic.h" "${extra[@]}" -I"$out/src"
  -I"$cuda" -I"${CUDA_HOME:-/usr/local/cuda}/include")
g++ "${flags[@]}" -c "$out/src/$unit.cpp" -o "$out/$unit.o"
g++ "${flags[@]}" -c "$here/$test.cpp" -o "$out/$test.o"
g++ -std=c++20 -O2 -I"${CUDA_HOME:-/usr/local/cuda}/include" -c "$here/runtime.cpp" -o "$out/runtime.o"
g++ -pthread "$out/$unit.o" "$out/$test.o" "$out/runtime.o" -o "$out/$test"
if [ "$unit" = grad ]; then
  cd "$cuda/../.." && GRAD_TEST="$out/$test" node --import tsx "$here/grad_cases.ts"
else
  "$out/$test"
fi
