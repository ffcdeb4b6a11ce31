#!/usr/bin/env bash
# The whole CUDA parity suite (test-cuda/) against the CPU backend.
mkdir -p "$OUT/cuda-tests"
timeout 420 npm run test:cuda > "$OUT/cuda-tests/test-cuda.log" 2>&1
echo "test:cuda rc=$?"
grep -E '^ℹ (tests|pass|fail)|^not ok|✖' "$OUT/cuda-tests/test-cuda.log" | head -30
