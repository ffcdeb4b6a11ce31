#!/usr/bin/env bash
# The whole CUDA parity suite (test-cuda/) against the CPU backend, several files at once (the CPU references
# dominate; the GPU machine has 16 cores). CUDA_TESTS_SECONDS bounds it (default 420); CUDA_TESTS_FILTER picks files
# (words matched against their paths, e.g. "train-batch train-mambamia").
mkdir -p "$OUT/cuda-tests"
timeout "${CUDA_TESTS_SECONDS:-420}" npm run test:cuda -- "--test-concurrency=${CUDA_TESTS_CONCURRENCY:-8}" ${CUDA_TESTS_FILTER:-} \
  > "$OUT/cuda-tests/test-cuda.log" 2>&1
echo "test:cuda rc=$?"
grep -E '^ℹ (tests|pass|fail)|^# (tests|pass|fail)|^not ok|✖' "$OUT/cuda-tests/test-cuda.log" | head -30
