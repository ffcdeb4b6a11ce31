#!/usr/bin/env bash
# longshot eval end to end on the GPU (issue 20): scripts/eval-smoke.sh cuda — the needle and VNBench-format
# sets with both shipped tiny models, in process and through `longshot serve`, predictions compared. About 2
# minutes. The slim device kit carries no ffmpeg: a carried .ffbin/ (xz of the shipped ffmpeg and ffprobe) is
# unpacked and put first on PATH. Results in $OUT/eval/.
set -uo pipefail
mkdir -p "$OUT/eval" /tmp/ffbin
for t in ffmpeg ffprobe; do
  [ -x /tmp/ffbin/$t ] || { xz -dc ".ffbin/$t.xz" > /tmp/ffbin/$t && chmod +x /tmp/ffbin/$t; }
done
export PATH=/tmp/ffbin:$PATH LONGSHOT_FFMPEG=/tmp/ffbin/ffmpeg LONGSHOT_FFPROBE=/tmp/ffbin/ffprobe
if ! command -v curl >/dev/null; then # the smoke script polls /health with curl
  printf '#!/bin/sh\nexec node -e "fetch(process.argv[process.argv.length-1]).then(r=>process.exit(r.ok?0:22),()=>process.exit(7))" "$@"\n' > /tmp/ffbin/curl
  chmod +x /tmp/ffbin/curl
fi
timeout 400 bash scripts/eval-smoke.sh cuda > "$OUT/eval/eval-smoke.txt" 2>&1
echo "eval-smoke rc=$?"
grep -E "identical predictions|accuracy|Error|error" "$OUT/eval/eval-smoke.txt" | head -20
