#!/usr/bin/env bash
# One GPU job of the session: build the CUDA addon, then run the named bench/gpu/<topic>.sh scripts in order
# (each writes under $OUT/<topic>/; JOB_BACKGROUND names topics run niced beside them, e.g. a few CUDA tests beside
# a training run), then pack every topic folder into one tarball per topic so the results
# come back within the device tool's file limits. Usage: bash bench/gpu/job.sh topic1 topic2 ...
set -uo pipefail
OUT=${OUT:-.bench-out}
export OUT
mkdir -p "$OUT"
T0=$SECONDS
# The kit leaves npm out (carry limit): a stand-in that runs package.json scripts (`npm run NAME [-- ARGS]`).
if ! command -v npm >/dev/null; then
  mkdir -p /tmp/nodebin
  cat > /tmp/nodebin/npm <<'SH'
#!/bin/sh
[ "$1" = run ] || { echo "npm stand-in: only 'npm run' is supported" >&2; exit 1; }
name=$2; shift 2; [ "$1" = -- ] && shift
cmd=$(node -e 'const s=require("./package.json").scripts[process.argv[1]]; if(!s) process.exit(1); console.log(s)' "$name") || { echo "no script $name" >&2; exit 1; }
PATH="$PWD/node_modules/.bin:$PATH" exec sh -c "$cmd \"\$@\"" sh "$@"
SH
  chmod +x /tmp/nodebin/npm
  export PATH=/tmp/nodebin:$PATH
fi
echo "[job] $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
# Always built: the build hashes its sources and recompiles only what changed, so a warm machine's build (kept
# between calls) costs seconds, and a kernel edited since never runs stale. Only for this machine's GPUs: half
# the fresh build's time.
LONGSHOT_CUDA_ARCHS=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | tr -d . | sort -u | paste -sd,)
export LONGSHOT_CUDA_ARCHS
timeout 300 npm run build:native > "$OUT/build.log" 2>&1
echo "[job] build:native rc=$? ($((SECONDS - T0)) s)"
bg=()
for topic in ${JOB_BACKGROUND:-}; do
  echo "[job] === $topic, in the background"
  mkdir -p "$OUT/$topic"
  nice -n 10 bash "bench/gpu/$topic.sh" > "$OUT/$topic/job.log" 2>&1 &
  bg+=($!)
done
# JOB_SECONDS (optional) caps the topics run in order, so that a call's limit never cuts off the packing below:
# a topic still running then is stopped, and what it wrote comes back.
for topic in "$@"; do
  echo "[job] === $topic ($((SECONDS - T0)) s)"
  cap=()
  if [ -n "${JOB_SECONDS:-}" ]; then
    left=$((JOB_SECONDS - (SECONDS - T0)))
    cap=(timeout -k 5 $((left > 1 ? left : 1)))
  fi
  "${cap[@]}" bash "bench/gpu/$topic.sh" 2>&1 | tail -25
done
if [ ${#bg[@]} -gt 0 ]; then
  wait "${bg[@]}"
  for topic in ${JOB_BACKGROUND:-}; do echo "[job] === $topic (background)"; tail -25 "$OUT/$topic/job.log"; done
fi
cd "$OUT" && for d in */; do tar -czf "${d%/}.tgz" "${d%/}" && rm -rf "${d%/}"; done
echo "[job] done in $((SECONDS - T0)) s"; ls -la
