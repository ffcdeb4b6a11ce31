#!/usr/bin/env bash
# One GPU job of the session: build the CUDA addon, then run the named bench/gpu/<topic>.sh scripts in order
# (each writes under $OUT/<topic>/), then pack every topic folder into one tarball per topic so the results
# come back within the device tool's file limits. Usage: bash bench/gpu/job.sh topic1 topic2 ...
set -uo pipefail
OUT=${OUT:-.bench-out}
export OUT
mkdir -p "$OUT"
T0=$SECONDS
echo "[job] $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
if [ ! -f native/cuda/build/longshot_cuda.node ]; then
  timeout 300 npm run build:native > "$OUT/build.log" 2>&1
  echo "[job] build:native rc=$? ($((SECONDS - T0)) s)"
fi
for topic in "$@"; do
  echo "[job] === $topic ($((SECONDS - T0)) s)"
  bash "bench/gpu/$topic.sh" 2>&1 | tail -25
done
cd "$OUT" && for d in */; do tar -czf "${d%/}.tgz" "${d%/}" && rm -rf "${d%/}"; done
echo "[job] done in $((SECONDS - T0)) s"; ls -la
