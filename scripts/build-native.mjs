#!/usr/bin/env node
// Builds the CUDA addon (native/cuda → native/cuda/build/longshot_cuda.node) with nvcc directly: no node-gyp,
// no downloads, libcudart linked statically, cuBLASLt opened at run time. Objects are cached by a hash of
// their source, every header and the flags, so an unchanged tree rebuilds in milliseconds.
//   node scripts/build-native.mjs             build; exit 1 if nvcc exists and compilation fails
//   node scripts/build-native.mjs --optional  (npm install) only where an NVIDIA driver is present (the paths
//       of native/cuda/driver-probes.json; LONGSHOT_BUILD_CUDA=1 builds anyway, =0 never); never fail: one line
//       when skipped or broken. Skipped, the addon is built on first use of --device cuda (src/backends/cuda/build.ts).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'native', 'cuda');
const out = join(src, 'build');
const target = join(out, 'longshot_cuda.node');
const optional = process.argv.includes('--optional');

function findNvcc() {
  const candidates = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'nvcc'));
  if (process.env.CUDA_HOME) candidates.push(join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  candidates.push('/usr/local/cuda/bin/nvcc');
  return candidates.find((p) => p && existsSync(p));
}

function findNodeHeaders() {
  const dirs = [];
  if (process.env.npm_config_nodedir) dirs.push(join(process.env.npm_config_nodedir, 'include', 'node'));
  dirs.push(join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node');
  return dirs.find((d) => existsSync(join(d, 'node_api.h')));
}

/**
 * Machine code for sm_80 and sm_90, and sm_90's PTX that newer GPUs JIT-compile. LONGSHOT_CUDA_ARCHS (compute
 * capabilities, e.g. `90` or `80,90`) builds for those alone, the highest one's PTX included: a build for the
 * one GPU at hand is about twice as fast (bench/gpu/job.sh sets it from nvidia-smi).
 */
function gencodes(archs) {
  const list = archs.split(',').map((a) => a.trim());
  if (!list.every((a) => /^\d{2,3}$/.test(a))) {
    console.error(
      `longshot: LONGSHOT_CUDA_ARCHS=${archs}: expected compute capabilities such as 90 or 80,90`,
    );
    process.exit(optional ? 0 : 1); // npm install never fails on it
  }
  const top = list
    .map(Number)
    .sort((a, b) => a - b)
    .at(-1);
  return [
    ...list.map((a) => `-gencode=arch=compute_${a},code=sm_${a}`),
    `-gencode=arch=compute_${top},code=compute_${top}`,
  ];
}
const GENCODE = gencodes(process.env.LONGSHOT_CUDA_ARCHS || '80,90');
// Files named *_sm90.cu hold Hopper-only code (wgmma, TMA): compiled for the arch-specific sm_90a target
// alone. Their host code checks the device before launching, so other GPUs never reach them.
const GENCODE_SM90A = ['-gencode=arch=compute_90a,code=sm_90a'];
const archFlags = (f) => (f.endsWith('_sm90.cu') ? GENCODE_SM90A : f.endsWith('.cu') ? GENCODE : []);

function run(cmd, args) {
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', fail);
    p.on('close', (code) => (code === 0 ? ok() : fail(new Error(`${cmd} exited with ${code}`))));
  });
}

async function build(nvcc, nodeHeaders) {
  const files = readdirSync(src).sort();
  const headers = files.filter((f) => /\.(h|cuh)$/.test(f));
  const sources = files.filter((f) => /\.(cu|cpp)$/.test(f));
  const version = execFileSync(nvcc, ['--version'], { encoding: 'utf8' });
  const flags = ['-std=c++17', '-O3', '-Xcompiler=-fPIC,-fvisibility=hidden', `-I${nodeHeaders}`, `-I${src}`];
  const common = createHash('sha256')
    .update(version)
    .update(flags.join(' '))
    .update(GENCODE.join(' '))
    .update(GENCODE_SM90A.join(' '));
  for (const h of headers) common.update(h).update(readFileSync(join(src, h)));
  const commonHash = common.digest('hex');
  mkdirSync(out, { recursive: true });

  const objects = sources.map((f) => {
    const hash = createHash('sha256')
      .update(commonHash)
      .update(f)
      .update(readFileSync(join(src, f)));
    return { f, obj: join(out, `${f.replace(/\.\w+$/, '')}.${hash.digest('hex').slice(0, 16)}.o`) };
  });
  const linkHash = createHash('sha256')
    .update(objects.map((o) => o.obj).join('\n'))
    .digest('hex')
    .slice(0, 16);
  const stamp = join(out, `link.${linkHash}`);
  if (existsSync(target) && existsSync(stamp)) {
    console.log(`longshot: CUDA addon up to date (${target})`);
    return;
  }
  const todo = objects.filter((o) => !existsSync(o.obj));
  const started = Date.now();
  // Compile with one job per core (CI has two); each nvcc call builds every architecture of one file.
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const { f, obj } = todo[next++];
      const tmp = `${obj}.tmp`;
      await run(nvcc, [...flags, ...archFlags(f), '-c', join(src, f), '-o', tmp]);
      renameSync(tmp, obj);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(cpus().length, todo.length)) }, worker));
  const tmpTarget = `${target}.tmp`;
  await run(nvcc, [
    '-shared',
    '-cudart=static',
    ...GENCODE,
    '-o',
    tmpTarget,
    ...objects.map((o) => o.obj),
    '-ldl',
    '-lpthread',
    '-lrt',
  ]);
  renameSync(tmpTarget, target);
  // Drop objects and stamps of older builds.
  const keep = new Set([...objects.map((o) => o.obj), target]);
  for (const f of readdirSync(out)) {
    const p = join(out, f);
    if (!keep.has(p)) rmSync(p, { force: true });
  }
  execFileSync('touch', [stamp]);
  console.log(
    `longshot: built the CUDA addon in ${((Date.now() - started) / 1000).toFixed(1)} s (${todo.length}/${objects.length} files compiled) → ${target}`,
  );
}

function gpuDriverPresent() {
  const probes = JSON.parse(readFileSync(join(src, 'driver-probes.json'), 'utf8'));
  return probes.some((p) => existsSync(p));
}

if (optional) {
  const wanted = process.env.LONGSHOT_BUILD_CUDA;
  if (wanted === '0' || (wanted !== '1' && !gpuDriverPresent())) {
    console.log(
      wanted === '0'
        ? 'longshot: LONGSHOT_BUILD_CUDA=0; skipping the CUDA addon (built on first use of --device cuda).'
        : 'longshot: no NVIDIA driver found; skipping the CUDA addon (built on first use of --device cuda).',
    );
    process.exit(0);
  }
}
const nvcc = findNvcc();
if (!nvcc) {
  console.log(
    'longshot: nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin); skipping the CUDA addon — the cpu backend works without it.',
  );
  process.exit(0);
}
const nodeHeaders = findNodeHeaders();
if (!nodeHeaders) {
  const msg =
    'longshot: Node headers (node_api.h) not found; set npm_config_nodedir to a Node install with include/node.';
  console.log(optional ? `${msg} Skipping the CUDA addon.` : msg);
  process.exit(optional ? 0 : 1);
}
try {
  await build(nvcc, nodeHeaders);
} catch (e) {
  if (!optional) throw e;
  console.log(
    `longshot: the CUDA addon failed to build (${e.message}); the cpu backend still works. Run "npm run build:native" to see why.`,
  );
}
