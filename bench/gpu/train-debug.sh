#!/usr/bin/env bash
# Finds which video length breaks `longshot train --device cuda` on the needle Vamba and which kernel faults
# (CUDA_LAUNCH_BLOCKING=1: the failing launch names its source line; compute-sanitizer when the machine has it),
# then profiles the host side of 30 steps at a length that works (node --cpu-prof, for the steps/s gap against
# PyTorch). Writes $OUT/train-debug/. About 3 minutes (TD_SANITIZER=1 adds compute-sanitizer on a failure).
set -uo pipefail
R="$OUT/train-debug"
mkdir -p "$R"
command -v node >/dev/null || source .device/setup.sh
LS=(node --import tsx src/cli/run.ts)
recipe() {  # frames videos out
  node -e '
    const [frames, videos, out] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync("recipes/needle-vamba.json", "utf8"));
    Object.assign(r.data.train, { frames: frames.split(",").map(Number) });
    Object.assign(r.data.eval, { count: 2 });
    Object.assign(r.batch, { videos: Number(videos) });
    r.output = { ...r.output, dir: "/tmp/td-run", checkpointEvery: 100000, evalEvery: 100000, logEvery: 1 };
    require("fs").writeFileSync(out, JSON.stringify(r));
  ' "$1" "$2" "$3"
}
# The bench's mix first (it failed at step 8 in session 9), with the GPU's memory sampled every second.
recipe 16,24,32,48,64 32 /tmp/td-mix.json
nvidia-smi --query-gpu=memory.used --format=csv,noheader -lms 1000 > "$R/mix-memory.txt" &
SMI=$!
CUDA_LAUNCH_BLOCKING=1 LONGSHOT_DEBUG=1 timeout 150 "${LS[@]}" train /tmp/td-mix.json --device cuda --steps 16 \
  --out /tmp/td-mix --json > "$R/mix.json" 2> "$R/mix.err"
echo "mixed lengths, 16 steps: rc=$?"; tail -n 25 "$R/mix.err"
kill $SMI
cp /tmp/td-mix/log.jsonl "$R/mix-log.jsonl" 2>/dev/null
echo "memory (MiB, per second): $(tr -d ' MiB' < "$R/mix-memory.txt" | paste -sd' ' | cut -c1-600)"
# Lengths one by one only when the mix did not fail (a failure names its kernel's source line already).
FAIL=""
if grep -q "Error\|error" "$R/mix.err"; then FAIL=mix; else
  for f in 32 48 64; do
    recipe "$f" 32 "/tmp/td-$f.json"
    CUDA_LAUNCH_BLOCKING=1 LONGSHOT_DEBUG=1 timeout 60 "${LS[@]}" train "/tmp/td-$f.json" --device cuda --steps 3 \
      --out "/tmp/td-$f" --json > "$R/f$f.json" 2> "$R/f$f.err"
    rc=$?
    echo "frames $f (32 videos of 32-frame budget): rc=$rc"
    [ $rc -ne 0 ] && { tail -n 25 "$R/f$f.err"; FAIL=$f; break; }
  done
fi
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$FAIL" ] && [ -n "$CS" ] && [ "${TD_SANITIZER:-0}" = 1 ]; then
  echo "compute-sanitizer at $FAIL:"
  timeout 150 "$CS" --print-limit 4 "${LS[@]}" train "/tmp/td-$FAIL.json" --device cuda --steps 16 --out /tmp/td-cs \
    --json > "$R/sanitizer.txt" 2>&1
  grep -E "Invalid|=========     at|by thread|Address|ERROR SUMMARY" "$R/sanitizer.txt" | head -30
fi
OK=32; [ "$FAIL" = 32 ] && OK=16; [ "$FAIL" = mix ] && OK=24
recipe "$OK" 32 /tmp/td-prof.json
mkdir -p "$R/prof"
timeout 150 node --cpu-prof --cpu-prof-dir "$R/prof" --import tsx src/cli/run.ts train /tmp/td-prof.json --device cuda \
  --steps 30 --out /tmp/td-prof --json > "$R/prof.json" 2> "$R/prof.err"
echo "profile at $OK frames: rc=$?"; tail -n 2 "$R/prof.err"
node -e '
  const l = require("fs").readFileSync("/tmp/td-prof/log.jsonl", "utf8").trim().split("\n").map(JSON.parse).filter((r) => r.step);
  const s = l.map((r) => r.seconds); const d = s.slice(1).map((x, i) => x - s[i]);
  console.log(`steps ${l.length}; s/step after the first 5: ${(d.slice(5).reduce((a, b) => a + b, 0) / (d.length - 5)).toFixed(3)}; data wait ${l.at(-1).dataWait}`);
'
ls -la "$R/prof"
