// The wasm kernels on this machine's architecture, for comparing architectures (docs/runtime.md, "arm64"): fixed
// inputs through GEMM, element-wise ops, norms, conv1d and the SSD scan under LONGSHOT_CPU_KERNELS=wasm, their max
// error against the TypeScript reference, and a hash of the wasm outputs' bytes, which is the same on every CPU.
// Needs a JavaScript build (no tsx: its esbuild is native code):
//   npx tsc -p tsconfig.build.json --outDir /tmp/lsdist && cp -r native package.json /tmp/lsdist/
//   node scripts/wasm-arch.mjs /tmp/lsdist
//   qemu-aarch64 -L <arm64 root with Debian's nodejs:arm64> <root>/usr/bin/node scripts/wasm-arch.mjs /tmp/lsdist
import { createHash } from 'node:crypto';

const dist = process.argv[2];
await import(`${dist}/src/backends/index.js`);
const { cpuBackend } = await import(`${dist}/src/backends/cpu/index.js`);
const { useCpuKernels } = await import(`${dist}/src/backends/cpu/kernels.js`);
const { wasmModule } = await import(`${dist}/src/backends/cpu/wasm.js`);
const ops = await import(`${dist}/src/runtime/ops.js`);
const cpu = cpuBackend();
const v = (n, f, lo = -1, hi = 1) =>
  Float32Array.from({ length: n }, (_, i) => lo + (hi - lo) * (0.5 + 0.5 * Math.sin(i * f)));
const T = (d, shape) => ops.tensor(cpu, d, shape);
const cases = {
  gemm: () => ops.linear(T(v(67 * 391, 1.3), [67, 391]), T(v(45 * 391, 7.1), [45, 391])),
  silu: () => ops.silu(T(v(301, 0.77, -9, 9), [301])),
  gelu: () => ops.gelu(T(v(301, 0.71, -9, 9), [301])),
  softplus: () => ops.softplus(T(v(301, 0.73, -30, 30), [301])),
  siluMul: () => ops.siluMul(T(v(5 * 37, 0.3), [5, 37]), T(v(37, 0.9), [37])),
  rmsNormGated: () =>
    ops.rmsNorm(T(v(3 * 74, 0.5), [3, 74]), T(v(74, 0.2, 0.5, 1.5), [74]), {
      eps: 1e-5,
      gate: T(v(3 * 74, 0.6), [3, 74]),
      groupSize: 37,
    }),
  layerNorm: () => ops.layerNorm(T(v(3 * 74, 0.5), [3, 74]), T(v(74, 0.2), [74]), T(v(74, 0.4), [74]), 1e-5),
  conv1d: () =>
    ops.conv1dCausal(
      T(v(2 * 11 * 23, 0.35), [2, 11, 23]),
      T(v(23 * 4, 0.45), [23, 1, 4]),
      T(v(23, 0.5), [23]),
      { silu: true },
    ).y,
  ssd: () =>
    ops.ssdScan(
      {
        x: T(v(45 * 4 * 7, 0.31), [1, 45, 4, 7]),
        dt: T(v(45 * 4, 0.37, 0.01, 0.3), [1, 45, 4]),
        A: T(v(4, 1.1, -2, -0.1), [4]),
        B: T(v(45 * 2 * 5, 0.41), [1, 45, 2, 5]),
        C: T(v(45 * 2 * 5, 0.43), [1, 45, 2, 5]),
        D: T(v(4, 0.5), [4]),
      },
      16,
    ).y,
};
const hash = createHash('sha256');
const report = {};
for (const [name, run] of Object.entries(cases)) {
  useCpuKernels('ts');
  const ref = await run().toArray();
  useCpuKernels('wasm');
  const fast = await run().toArray();
  let err = 0,
    scale = 1e-30;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(ref[i] - fast[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  report[name] = Number((err / scale).toExponential(2));
  hash.update(new Uint8Array(Float32Array.from(fast).buffer));
}
console.log(
  JSON.stringify({
    arch: process.arch,
    node: process.version,
    module: wasmModule(),
    maxRelErr: report,
    outputHash: hash.digest('hex').slice(0, 16),
  }),
);
