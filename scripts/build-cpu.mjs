#!/usr/bin/env node
// Builds the fast CPU kernels of native/cpu (src/backends/cpu/kernels.ts loads them):
//   node scripts/build-cpu.mjs             the native addon (native/cpu/build/longshot_cpu.node) with the C
//       compiler ($CC, else cc, gcc or clang); exit 1 if a compiler exists and compilation fails
//   node scripts/build-cpu.mjs --optional  (npm install) the same, never failing: one line when skipped or broken
//       (the checked-in WebAssembly kernels serve then)
//   node scripts/build-cpu.mjs --wasm      native/cpu/gemm.wasm (WebAssembly SIMD) and gemm-relaxed.wasm (relaxed
//       SIMD: fused multiply-adds) with Debian's clang 16 and wasm-ld (checked in: users need no compiler); --wasm
//       --check rebuilds them in a temporary folder and exits 1 if they differ from the checked-in ones
// x86-64 builds every kernel (base, AVX2+FMA, AVX-512), the addon picks one by CPUID at run time; arm64 builds
// the base kernel and the NEON one (a larger register tile); other CPUs the base kernel (16-byte vectors). Objects are cached by a hash of sources and flags.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'native', 'cpu');
const out = join(src, 'build');
const target = join(out, 'longshot_cpu.node');
// The modules, each with its extra flags; the loader takes the first this runtime validates (src/backends/cpu/wasm.ts).
const WASM = [
  { file: 'gemm.wasm', flags: [] },
  { file: 'gemm-relaxed.wasm', flags: ['-mrelaxed-simd'] },
];
const args = process.argv.slice(2);
const optional = args.includes('--optional');

const onPath = (name) =>
  (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, name)));

// -ffp-contract=fast lets the compiler fuse a·b + c into FMA where the target has it.
const COMMON = ['-O3', '-ffp-contract=fast', '-fno-math-errno', '-std=c11', `-I${src}`];

// Clang 16: clang 14 encodes relaxed SIMD with the proposal's early opcodes, which runtimes reject now.
function buildWasm(dir) {
  if (!onPath('clang-16') || !onPath('wasm-ld-16'))
    throw new Error('clang 16 and its wasm-ld are needed (apt-get install clang-16 lld-16)');
  for (const w of WASM) buildWasmModule(join(dir, w.file), w.flags);
}

function buildWasmModule(dest, flags) {
  // No libc: the kernels need none; bulk memory turns the zero fills into memory.fill.
  execFileSync('clang-16', [
    '--target=wasm32',
    '-msimd128',
    ...flags,
    '-mbulk-memory',
    '-nostdlib',
    '-fno-builtin',
    ...COMMON,
    '-Wl,--no-entry',
    '-Wl,--export=__heap_base',
    '-Wl,--max-memory=4294967296',
    '-Wl,--strip-debug',
    join(src, 'wasm.c'),
    join(src, 'kernel_base.c'),
    '-o',
    dest,
  ]);
}

function findCc() {
  if (process.env.CC) return process.env.CC;
  return ['cc', 'gcc', 'clang'].find(onPath);
}

function findNodeHeaders() {
  const dirs = [];
  if (process.env.npm_config_nodedir) dirs.push(join(process.env.npm_config_nodedir, 'include', 'node'));
  dirs.push(join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node');
  return dirs.find((d) => existsSync(join(d, 'node_api.h')));
}

function run(cmd, args) {
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', fail);
    p.on('close', (code) => (code === 0 ? ok() : fail(new Error(`${cmd} exited with ${code}`))));
  });
}

async function buildNative(cc, nodeHeaders) {
  const x86 = arch() === 'x64';
  const units = [
    { file: 'addon.c', flags: [`-I${nodeHeaders}`] },
    { file: 'kernel_base.c', flags: [] },
    ...(arch() === 'arm64' ? [{ file: 'kernel_neon.c', flags: [] }] : []),
    ...(x86
      ? [
          { file: 'kernel_avx2.c', flags: ['-mavx2', '-mfma'] },
          { file: 'kernel_avx512.c', flags: ['-mavx512f', '-mfma'] },
        ]
      : []),
  ];
  const version = execFileSync(cc, ['--version'], { encoding: 'utf8' });
  const headers = readdirSync(src)
    .filter((f) => /\.(h|inc)$/.test(f))
    .sort();
  const common = createHash('sha256').update(version).update(COMMON.join(' '));
  for (const h of headers) common.update(h).update(readFileSync(join(src, h)));
  const commonHash = common.digest('hex');
  const objects = units.map((u) => {
    const hash = createHash('sha256')
      .update(commonHash)
      .update(u.file)
      .update(u.flags.join(' '))
      .update(readFileSync(join(src, u.file)))
      .digest('hex')
      .slice(0, 16);
    return { ...u, obj: join(out, `${u.file.replace(/\.c$/, '')}.${hash}.o`) };
  });
  const stamp = join(
    out,
    `link.${createHash('sha256')
      .update(objects.map((o) => o.obj).join('\n'))
      .digest('hex')
      .slice(0, 16)}`,
  );
  if (existsSync(target) && existsSync(stamp)) return 'up to date';
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  // One compiler process per file, all at once (four small files).
  await Promise.all(
    objects
      .filter((o) => !existsSync(o.obj))
      .map(async (o) => {
        await run(cc, [
          ...COMMON,
          '-fPIC',
          '-fvisibility=hidden',
          ...o.flags,
          '-c',
          join(src, o.file),
          '-o',
          `${o.obj}.tmp`,
        ]);
        renameSync(`${o.obj}.tmp`, o.obj);
      }),
  );
  const link = platform() === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [];
  await run(cc, ['-shared', ...link, '-o', `${target}.tmp`, ...objects.map((o) => o.obj)]);
  renameSync(`${target}.tmp`, target);
  const keep = new Set([...objects.map((o) => o.obj), target]);
  for (const f of readdirSync(out)) if (!keep.has(join(out, f))) rmSync(join(out, f), { force: true });
  writeFileSync(stamp, '');
  return `built in ${((Date.now() - started) / 1000).toFixed(1)} s`;
}

if (args.includes('--wasm')) {
  if (args.includes('--check')) {
    const dir = mkdtempSync(join(tmpdir(), 'longshot-wasm-'));
    try {
      buildWasm(dir);
      for (const { file } of WASM) {
        const have = join(src, file);
        if (!existsSync(have) || !readFileSync(join(dir, file)).equals(readFileSync(have))) {
          console.error(
            `longshot: native/cpu/${file} differs from a fresh build of native/cpu; run "npm run build:wasm" and commit it.`,
          );
          process.exit(1);
        }
      }
      console.log(`longshot: native/cpu/{${WASM.map((w) => w.file).join(',')}} match their sources`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else {
    buildWasm(src);
    console.log(`longshot: built ${WASM.map((w) => join(src, w.file)).join(' and ')}`);
  }
} else {
  const cc = findCc();
  const nodeHeaders = findNodeHeaders();
  if (!cc || !nodeHeaders) {
    const why = cc ? 'Node headers (node_api.h) not found' : 'no C compiler (cc, gcc, clang or $CC)';
    console.log(`longshot: ${why}; skipping the native CPU kernels (the WebAssembly ones serve).`);
    process.exit(optional ? 0 : cc ? 1 : 0);
  }
  try {
    console.log(`longshot: native CPU kernels ${await buildNative(cc, nodeHeaders)} (${target})`);
  } catch (e) {
    if (!optional) throw e;
    console.log(
      `longshot: the native CPU kernels failed to build (${e.message.split('\n')[0]}); the WebAssembly ones serve. Run "npm run build:cpu" to see why.`,
    );
  }
}
