#!/usr/bin/env bash
# Autograd on the GPU (about 3 minutes; run it through bench/gpu/job.sh, which stands in for npm where the kit
# has none): the CUDA-vs-CPU gradient parity tests (test-cuda/autograd.test.ts),
# then the cost of a training step on the tiny needle Vamba (bench/autograd.ts) into $OUT/autograd/.
mkdir -p "$OUT/autograd"
timeout 300 npm run test:cuda -- test-cuda/autograd.test.ts > "$OUT/autograd/test-cuda.log" 2>&1
echo "test:cuda autograd rc=$?"
grep -E '^ℹ (tests|pass|fail)|^not ok|✖' "$OUT/autograd/test-cuda.log" | head -20
timeout 240 node --import tsx bench/autograd.ts --device cuda --out "$OUT/autograd" 2>&1 | tee "$OUT/autograd/bench.log" | tail -8
