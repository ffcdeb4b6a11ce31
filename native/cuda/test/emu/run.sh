#!/bin/bash
# Builds kernels_test against the CPU emulation (emu.h) and runs its correctness checks without a GPU:
#   native/cuda/test/emu/run.sh [attention|mass|ssd|conv1d|norm|decode]
# Needs g++ ≥ 12 and the CUDA headers (CUDA_HOME, default /usr/local/cuda); no GPU, driver or nvcc. Each CUDA
# thread is a host thread, so the whole suite takes minutes: it checks indexing, MMA fragment layouts and
# barriers, not speed. The PTX stand-ins in mma_util.cuh are checked by the attention family, which passes at the
# same errors as on an H200.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda=$(cd "$here/.." && cd .. && pwd)
out=${EMU_BUILD:-/tmp/longshot-emu}
mkdir -p "$out/src"
cp "$here/mma_util.cuh" "$out/src/"  # found before native/cuda's own (same directory as the sources)
cp "$cuda/mma_tiles.cuh" "$out/src/"  # beside them, so that its own include of mma_util.cuh finds the stand-ins
for f in attention attention_mass ssd conv1d rms_norm layer_norm decode; do python3 "$here/to_host.py" "$cuda/$f.cu" "$out/src/$f.cpp"; done
cp "$cuda/test/kernels_test.cu" "$out/src/kernels_test.cpp"
flags=(-std=c++20 -O2 -pthread -w -include "$here/emu.h" -I"$out/src" -I"$cuda" -I"${CUDA_HOME:-/usr/local/cuda}/include")
pids=()
for f in attention_mass ssd conv1d rms_norm layer_norm decode kernels_test; do
  g++ "${flags[@]}" -c "$out/src/$f.cpp" -o "$out/$f.o" & pids+=($!)
done
g++ -std=c++20 -O2 -I"${CUDA_HOME:-/usr/local/cuda}/include" -c "$here/runtime.cpp" -o "$out/runtime.o" & pids+=($!)
# attention.cu may use PTX that mma_util.cuh here has no stand-in for: then its family cannot run, the others can.
stubbed=
if ! g++ "${flags[@]}" -c "$out/src/attention.cpp" -o "$out/attention.o" 2> "$out/attention.log"; then
  echo "emu: attention.cu does not build under the emulation (see $out/attention.log); its family is skipped" >&2
  printf '#include "attention.h"\n#include <stdexcept>\nsize_t attention_workspace_bytes(const AttentionDims &, DT) { throw std::runtime_error("attention is not emulated"); }\nvoid attention(void *, const void *, const void *, const void *, const float *, float *, const int *, const AttentionDims &, DT, void *, size_t, cudaStream_t) { throw std::runtime_error("attention is not emulated"); }\nbool attention_partials_supported(const AttentionDims &, DT, const void *, const void *, const void *) { return false; }\nint attention_partials_splits(const AttentionDims &) { return 1; }\nvoid attention_partials(float *, float *, int, const void *, const void *, const void *, const AttentionDims &, cudaStream_t) { throw std::runtime_error("attention is not emulated"); }\n' > "$out/src/attention_stub.cpp"
  g++ "${flags[@]}" -c "$out/src/attention_stub.cpp" -o "$out/attention.o"
  stubbed=1
fi
# The Hopper attention (wgmma, TMA) has no emulation: it reports itself unsupported, so attention takes the
# mma.sync kernels here, as on GPUs before sm_90.
printf '#include "attention_sm90.h"\n#include <stdexcept>\nbool attention_sm90_supported(const AttentionDims &, DT) { return false; }\nsize_t attention_sm90_workspace_bytes(const AttentionDims &) { return 0; }\nvoid attention_sm90(void *, const void *, const void *, const void *, const int32_t *, const int *, const AttentionDims &, void *, cudaStream_t) { throw std::runtime_error("attention_sm90 is not emulated"); }\n' > "$out/src/attention_sm90_stub.cpp"
g++ "${flags[@]}" -c "$out/src/attention_sm90_stub.cpp" -o "$out/attention_sm90.o" & pids+=($!)
g++ "${flags[@]}" -c "$here/binary_stub.cpp" -o "$out/binary_stub.o" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
g++ -pthread "$out"/{attention,attention_mass,attention_sm90,ssd,conv1d,rms_norm,layer_norm,decode,binary_stub,kernels_test,runtime}.o -o "$out/kernels_test"
if [ -n "${1:-}" ] || [ -z "$stubbed" ]; then
  "$out/kernels_test" test "${1:-}"
else
  for family in mass ssd conv1d norm decode; do "$out/kernels_test" test "$family"; done
fi
