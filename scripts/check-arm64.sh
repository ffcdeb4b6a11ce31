#!/usr/bin/env bash
# Builds the C kernels of native/cpu for arm64 (the base kernel and the NEON one) with Debian's cross compiler and
# runs native/cpu/check.c under qemu: every kernel against plain scalar references on odd sizes. Needs
#   apt-get install gcc-aarch64-linux-gnu qemu-user
# "--host" builds and runs the same check for this machine's kernels instead (x86-64: base, AVX2, AVX-512 when the
# CPU has it). Takes a few seconds; exits 1 on a mismatch or a failed build.
set -euo pipefail
src="$(cd "$(dirname "$0")/../native/cpu" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
flags=(-O3 -ffp-contract=fast -fno-math-errno -std=c11 -Wall -Werror "-I$src")
if [ "${1:-}" = "--host" ]; then
  cc="${CC:-cc}"
  units=("$src/kernel_base.c")
  run=()
  if [ "$(uname -m)" = x86_64 ]; then
    "$cc" "${flags[@]}" -mavx2 -mfma -c "$src/kernel_avx2.c" -o "$out/avx2.o"
    "$cc" "${flags[@]}" -mavx512f -mfma -c "$src/kernel_avx512.c" -o "$out/avx512.o"
    units+=("$out/avx2.o" "$out/avx512.o")
    kernels=(base avx2)
    grep -q avx512f /proc/cpuinfo && kernels+=(avx512)
  elif [ "$(uname -m)" = aarch64 ]; then
    units+=("$src/kernel_neon.c")
    kernels=(base neon)
  else
    kernels=(base)
  fi
else
  cc=aarch64-linux-gnu-gcc
  for tool in "$cc" qemu-aarch64; do
    command -v "$tool" >/dev/null || {
      echo "check-arm64: $tool not found; apt-get install gcc-aarch64-linux-gnu qemu-user" >&2
      exit 2
    }
  done
  units=("$src/kernel_base.c" "$src/kernel_neon.c")
  kernels=(base neon)
  run=(qemu-aarch64)
fi
# Static, so qemu needs no arm64 libraries.
"$cc" "${flags[@]}" -static "$src/check.c" "${units[@]}" -o "$out/check" -lm
file="$(command -v file >/dev/null && file -b "$out/check" | cut -d, -f1-2 || true)"
echo "check: ${file:-built} (${kernels[*]})"
"${run[@]}" "$out/check" "${kernels[@]}"
