#!/usr/bin/env bash
# Batch video QA throughput with 1, 2 and 4 (H100: 3) `longshot worker`s sharing one GPU (issue 26): about 3.5 minutes
# (at most 4), from the repository root; builds nothing (the CUDA addon is already built). Needs .redis/ (the
# packed redis-server: scripts/redis-pack.sh on the coordinator's machine, carried with the tree).
# Results in $OUT/scaling/:
#   batch_scaling.json / batch_scaling_table.md   per phase: videos/h, questions/h, vs N × 1 worker, mean job
#                              time, queue wait, GPU utilisation and memory (the table for docs/benchmarks/)
#   batch_scaling.log, worker-*.log, redis.log
# The random Vamba-7B checkpoint (22.6 GB) is written to the temporary folder and removed at the end.
# `bash bench/gpu/scaling.sh --cpu`: the same on the CPU with the tiny needle Vamba (1 and 2 workers, ~1 minute).
set -u
OUT=${OUT:-gpu-out}/scaling
mkdir -p "$OUT"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }
[ -x .redis/run.sh ] || { echo ".redis/run.sh missing: run scripts/redis-pack.sh where Redis is installed and carry .redis"; exit 1; }

if [ "${1:-}" = "--cpu" ]; then
  ARGS=(--device cpu --workers 1,2 --window 15 --jobs 4)
  LIMIT=150
else
  nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv,noheader
  # A Vamba-7B worker holds 21 GiB of bf16 weights (11.3 B parameters) and ~3 GiB more: 4 share an H200
  # (139 GiB), 3 an H100 (80 GiB).
  MEM=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  if [ "${MEM:-0}" -ge 120000 ]; then WORKERS=1,2,4; else WORKERS=1,2,3; fi
  # 256-frame 448×252 videos (18k video tokens), 4 questions × 32 tokens each; 30 s per phase.
  ARGS=(--device cuda --workers $WORKERS --window 30 --jobs 10 --frames 256 --size 448x252 --questions 4 --max-new-tokens 32)
  LIMIT=235
fi
# Its own temporary folder (the checkpoint, the videos), removed even when the time limit cuts the run short.
TMPDIR=$(mktemp -d)
export TMPDIR
step "bench/batch_scaling.ts ${ARGS[*]}"
# timeout signals the whole process group: the workers and redis-server stop with the benchmark.
timeout "$LIMIT" node --import tsx bench/batch_scaling.ts "${ARGS[@]}" --out "$OUT" >"$OUT/batch_scaling.log" 2>&1
echo "rc=$?"
grep -E '^\[' "$OUT/batch_scaling.log" | tail -12
cat "$OUT/batch_scaling_table.md" 2>/dev/null
rm -rf "$TMPDIR"
step done
