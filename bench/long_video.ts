/**
 * The long-video benchmark (issue 9): prefill time (vision / LLM), peak memory, decoding speed and the time
 * to first token of a second question, against the number of frames, for longshot-Vamba, longshot-Qwen2-VL
 * and the PyTorch peer (transformers Qwen2-VL-7B, SDPA, bf16; bench/long_video_peer.py), on one GPU.
 *
 * Models are full size with random bf16 weights made on the device (RandomWeights), loaded through the same
 * loaders and modules as a real checkpoint. Frames are synthetic 640×360 frames after smart_resize (644×364,
 * 1196 patches and 299 tokens per two frames), streamed through the vision tower a batch at a time.
 * Each series runs in its own process (its own allocator and peak), stops at its first out-of-memory (found
 * before starting, by the memory estimate, or by the device) and skips sizes that would overrun its time.
 *
 *   npm run bench:long-video                       # on the GPU machine: all three series
 *   npx tsx bench/long_video.ts --tiny             # same code, tiny configs on the CPU (smoke test)
 *   options: --frames 16,64,... --series vamba,qwen2vl,peer,timeviper,timeviper-transv --budget 150 (s per series)
 *            --decode 256 --timeviper-frames 1024,5120,10240 (TimeViper-9B, bench/long_video_timeviper.ts)
 *            --out docs/benchmarks/long_video (writes .json and .png)
 *            --chunk / --vision-chunk / --ssd-chunk (tuning), --profile (per-kernel GPU times from stream
 *            timestamps, and the stream's idle time; CUDA only)
 *            --replot docs/benchmarks/long_video.json (redraw the PNG from a results file)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/cuda/index.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { OutOfMemoryError } from '../src/errors.js';
import { generate } from '../src/generate/generate.js';
import type { CausalLM } from '../src/generate/types.js';
import { assertFits } from '../src/models/fit.js';
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { estimateMemory } from '../src/models/qwen2vl/size.js';
import { encodeVisionStream, type GridTHW, type PixelBatch } from '../src/models/qwen2vl/vision.js';
import { vambaConfigJson } from '../src/models/vamba/convert.js';
import { Vamba } from '../src/models/vamba/model.js';
import { estimateVambaMemory } from '../src/models/vamba/size.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import { Random } from '../src/util/random.js';
import { drawFigure } from './plot.js';
import { randomQwen2VL, randomVamba } from './random-model.js';

const { values: args } = parseArgs({
  options: {
    tiny: { type: 'boolean', default: false },
    frames: { type: 'string' },
    series: { type: 'string' },
    budget: { type: 'string' },
    decode: { type: 'string' },
    out: { type: 'string' },
    child: { type: 'string' },
    // Tuning knobs (defaults are the library's): Mamba tokens per chunk, vision patches per call, SSD chunk.
    chunk: { type: 'string' },
    'vision-chunk': { type: 'string' },
    'ssd-chunk': { type: 'string' },
    /** Time every kernel on the GPU (timestamps on the stream, no waiting) and print where the time goes. */
    profile: { type: 'boolean', default: false },
    /** Redraw the figure of a results JSON (no measuring). */
    replot: { type: 'string' },
    /** Frame counts of the TimeViper series (default 1024,5120,10240). */
    'timeviper-frames': { type: 'string' },
  },
});
const CHUNK = args.chunk ? Number(args.chunk) : undefined;
const VISION_CHUNK = args['vision-chunk'] ? Number(args['vision-chunk']) : undefined;
const TINY = args.tiny;
const FRAMES = (args.frames ?? (TINY ? '4,8,16' : '16,64,256,512,1024,2048,3600')).split(',').map(Number);
const BUDGET_S = Number(args.budget ?? (TINY ? 60 : 150));
const DECODE = Number(args.decode ?? (TINY ? 16 : 256));
const OUT = args.out ?? (TINY ? join(tmpdir(), 'long_video_tiny') : 'docs/benchmarks/long_video');
const ROOT = join(import.meta.dirname, '..');
/** Frame size after smart_resize: 640×360 → 644×364 (tiny: 40×24 with the fixtures' 4-pixel patches). */
const [HEIGHT, WIDTH] = TINY ? [24, 40] : [364, 644];

export interface Row {
  frames: number;
  videoTokens: number;
  status: 'ok' | 'oom' | 'skipped';
  note?: string;
  visionS?: number;
  llmS?: number;
  prefillS?: number;
  /** Live-tensor peak (torch: max_memory_allocated) and what the allocator held (torch: max_memory_reserved). */
  peakGiB?: number;
  reservedGiB?: number;
  estimateGiB?: number;
  decodeTokS?: number;
  ttft2S?: number;
  /** Matmul TFLOP/s reached by each phase (prefillFlops / time). */
  visionTFs?: number;
  llmTFs?: number;
}

export interface Series {
  name: string;
  device: string;
  setupS: number;
  rows: Row[];
}

const GiB = 2 ** 30;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function configs(): { vamba: Qwen2VLConfig; qwen2vl: Qwen2VLConfig } {
  if (TINY) {
    // The tiny Vamba fixture's config, and the same Qwen2-VL without the Vamba fields.
    const json = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/vamba/tiny-a/config.json'), 'utf8'));
    const plain = Object.fromEntries(
      Object.entries(json).filter(([k]) => !/^(use_alpha|cross_attn_|distill|vision_mamba)/.test(k)),
    );
    return { vamba: parseQwen2VLConfig(json), qwen2vl: parseQwen2VLConfig(plain) };
  }
  // Qwen2-VL-7B-Instruct's config.json; Vamba adds its fields as the conversion does.
  const qwen2vl = JSON.parse(
    readFileSync(join(ROOT, 'test/fixtures/configs/qwen2vl-7b-instruct/config.json'), 'utf8'),
  );
  const vamba = vambaConfigJson(qwen2vl);
  if (args['ssd-chunk'])
    Object.assign(vamba.vision_mamba_mixer_config as object, { chunk_size: Number(args['ssd-chunk']) });
  return {
    vamba: parseQwen2VLConfig(vamba),
    qwen2vl: parseQwen2VLConfig(qwen2vl),
  };
}

/** Synthetic preprocessed pixels: a few random temporal groups, cycled, a batch of groups at a time. */
function* pixelBatches(groups: number, patchesPerGroup: number, rowLen: number): Generator<PixelBatch> {
  const perBatch = 8; // 16 frames, as encodeVideoFile decodes them
  const groupLen = patchesPerGroup * rowLen;
  const rng = new Random(7);
  const pool = Array.from({ length: 3 }, () => {
    const g = new Float32Array(groupLen);
    for (let i = 0; i < groupLen; i++) g[i] = rng.uniform(-1.8, 2.1); // CLIP-normalised range
    return g;
  });
  const buf = new Float32Array(perBatch * groupLen);
  for (let g0 = 0; g0 < groups; g0 += perBatch) {
    const n = Math.min(perBatch, groups - g0);
    for (let i = 0; i < n; i++) buf.set(pool[(g0 + i) % pool.length], i * groupLen);
    yield { pixels: buf.subarray(0, n * groupLen), groups: n };
  }
}

/** Ordinary text ids (below every special token) of a prompt. */
const textIds = (n: number, seed: number, vocab: number) => {
  const rng = new Random(seed);
  return Array.from({ length: n }, () => rng.int(1, Math.floor(vocab * 0.9)));
};

/** Runs `generate` for DECODE tokens; returns the time to the first token and the decoding rate after it. */
async function timedGenerate<I>(lm: CausalLM<I>, input: I): Promise<{ ttft: number; tokS: number }> {
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  for await (const _ of generate(lm, input, { maxNewTokens: DECODE })) {
    if (++n === 1) first = performance.now();
  }
  const end = performance.now();
  return { ttft: (first - t0) / 1000, tokS: n > 1 ? ((n - 1) * 1000) / (end - first) : 0 };
}

async function ttftOnly<I>(lm: CausalLM<I>, input: I): Promise<number> {
  const t0 = performance.now();
  for await (const _ of generate(lm, input, { maxNewTokens: 1 })) break;
  return (performance.now() - t0) / 1000;
}

/**
 * Time a size would take, from the last measured one: prefill (and the second question's time to first
 * token) scaled by frames^power (1 for Vamba, 1.5 for attention over the video: between its linear and
 * quadratic terms), plus the decoding at the last rate.
 */
function predict(last: Row | undefined, frames: number, power: number): number {
  if (!last?.prefillS) return 0;
  const grow = (frames / last.frames) ** power;
  return (last.prefillS + (last.ttft2S ?? 0)) * grow + DECODE / (last.decodeTokS || 1);
}

/**
 * Matmul FLOPs of a prefill (multiply-adds × 2), to set each phase against the GEMM peak: the vision tower
 * (its Linear layers and the attention inside each temporal group) and the LLM part (Vamba: the Mamba
 * projections of every layer but the last, whose video update nothing reads, and the K/V projections;
 * Qwen2-VL: every decoder Linear over the whole sequence and causal attention).
 */
export function prefillFlops(c: Qwen2VLConfig, groups: number, perGroup: number, vamba: boolean) {
  const v = c.vision;
  const e = v.embed_dim;
  const patches = groups * perGroup;
  const tokens = patches / v.spatial_merge_size ** 2;
  const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  const block = 3 * e * e + e * e + 2 * v.mlp_ratio * e * e;
  const merged = e * v.spatial_merge_size ** 2;
  const vision =
    2 * patches * (rowLen * e + v.depth * block) +
    2 * tokens * (merged * merged + merged * v.hidden_size) +
    v.depth * 4 * patches * perGroup * e;
  const t = c.text;
  const L = t.num_hidden_layers;
  const kv = 2 * t.num_key_value_heads * t.head_dim;
  let llm: number;
  if (vamba) {
    const m = c.vision_mamba_mixer_config;
    const dInner = m.d_ssm ?? m.expand * t.hidden_size;
    const dInProj = 2 * dInner + 2 * m.ngroups * m.d_state + dInner / m.headdim;
    llm =
      2 * tokens * ((L - 1) * (t.hidden_size * dInProj + dInner * t.hidden_size) + L * t.hidden_size * kv);
  } else {
    const q = t.num_attention_heads * t.head_dim;
    const linear = t.hidden_size * (2 * q + kv) + 3 * t.hidden_size * t.intermediate_size;
    llm = 2 * tokens * L * linear + L * 2 * tokens * tokens * q; // causal: half of 4·n²·d
  }
  return { vision, llm };
}

async function runSeries(which: 'vamba' | 'qwen2vl'): Promise<Series> {
  const backend: Backend = TINY ? cpuBackend() : await getBackend('cuda');
  const dtype = TINY ? 'f32' : 'bf16';
  const config = configs()[which];
  const t0 = performance.now();
  const model =
    which === 'vamba'
      ? await randomVamba(config, backend, dtype)
      : await randomQwen2VL(config, backend, dtype);
  await backend.synchronize();
  const setupS = (performance.now() - t0) / 1000;
  const profile = args.profile ? profileKernels(backend) : null;
  const v = config.vision;
  const grid: (frames: number) => GridTHW = (f) => [f / 2, HEIGHT / v.patch_size, WIDTH / v.patch_size];
  const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  const unit = v.spatial_merge_size ** 2;
  let started = performance.now();
  const rows: Row[] = [];
  const device = 'device' in backend ? (backend as { device: { name: string } }).device.name : 'cpu';
  // The first size runs twice and its first run is dropped: plan caches and allocator warm up, as the peer's.
  for (const [i, frames] of [FRAMES[0], ...FRAMES].entries()) {
    const g = grid(frames);
    const videoTokens = (g[0] * g[1] * g[2]) / unit;
    const row: Row = { frames, videoTokens, status: 'ok' };
    rows.push(row);
    const spent = (performance.now() - started) / 1000;
    const guess = predict(rows.at(-2), frames, which === 'vamba' ? 1 : 1.5);
    if (spent + guess > BUDGET_S) {
      Object.assign(row, {
        status: 'skipped',
        note: `~${guess.toFixed(0)} s would pass the ${BUDGET_S} s budget`,
      });
      break;
    }
    const batches = () => pixelBatches(g[0], g[1] * g[2], rowLen);
    const sync = () => backend.synchronize();
    try {
      await sync();
      backend.resetPeak();
      const question = textIds(24, frames, config.text.vocab_size);
      const question2 = textIds(24, frames + 1, config.text.vocab_size);
      if (model instanceof Vamba) {
        const knobs = { chunkLen: CHUNK, maxPatchesPerChunk: VISION_CHUNK };
        const e = estimateVambaMemory(config, { frames, grid: g, dtype, ...knobs });
        row.estimateGiB = r3(e.totalBytes / GiB);
        model.assertVideoFits(g, knobs);
        const t1 = performance.now();
        const V = model.embedVideoStream(batches(), g, knobs);
        await sync();
        const t2 = performance.now();
        using handle = model.encodeVideoTokens(
          V,
          [g[0], g[1] / 2, g[2] / 2],
          {
            model: model.modelId,
            video: `synthetic:${frames}`,
            sampling: 'all',
            size: `${WIDTH}x${HEIGHT}`,
            dtype,
          },
          CHUNK,
        );
        await sync();
        const t3 = performance.now();
        Object.assign(row, { visionS: r3((t2 - t1) / 1000), llmS: r3((t3 - t2) / 1000) });
        {
          using s = model.session(handle, { capacity: question.length + DECODE + 1 });
          row.decodeTokS = r3((await timedGenerate(s, question)).tokS);
        }
        using s2 = model.session(handle, { capacity: question2.length + 2 });
        row.ttft2S = r3(await ttftOnly(s2, question2));
      } else {
        const e = estimateMemory(config, { frames, height: HEIGHT, width: WIDTH, newTokens: DECODE, dtype });
        row.estimateGiB = r3(e.totalBytes / GiB);
        assertFits(backend, e.totalBytes, `Qwen2-VL on ${frames} frames`, {
          weights: e.weightBytes,
          'KV cache': e.kvCacheBytes,
          activations: e.activationBytes,
        });
        const t1 = performance.now();
        const V = encodeVisionStream(model.visual, batches(), g, dtype, VISION_CHUNK);
        await sync();
        const t2 = performance.now();
        try {
          const ids = (q: number[]) => [
            ...textIds(12, 3, config.text.vocab_size),
            config.vision_start_token_id,
            ...new Array(videoTokens).fill(config.video_token_id),
            config.vision_end_token_id,
            ...q,
          ];
          const inputs = (q: number[]) => ({ inputIds: ids(q), videoGridThw: [g], videoEmbeds: V });
          // Everything before the question (system text + video) is prefilled once, as the runner does when
          // it encodes a video; the first question continues from it.
          const t3 = performance.now();
          using prefix = model.prefillPrefix(inputs([]), { room: 64 + DECODE });
          await sync();
          const prefixS = (performance.now() - t3) / 1000;
          {
            using s = model.session({ capacity: videoTokens + 40 + DECODE, prefix });
            const r = await timedGenerate(s, inputs(question));
            const llmS = r3(prefixS + r.ttft);
            Object.assign(row, { visionS: r3((t2 - t1) / 1000), llmS, decodeTokS: r3(r.tokS) });
          }
          // A second question continues from the same prefix: only its own tokens run.
          using s2 = model.session({ capacity: videoTokens + 42, prefix });
          row.ttft2S = r3(await ttftOnly(s2, inputs(question2)));
        } finally {
          V.dispose();
        }
      }
      row.prefillS = r3(row.visionS! + row.llmS!);
      const fl = prefillFlops(config, g[0], g[1] * g[2], which === 'vamba');
      row.visionTFs = r3(fl.vision / row.visionS! / 1e12);
      row.llmTFs = r3(fl.llm / row.llmS! / 1e12);
      await sync();
      const m = backend.memory();
      Object.assign(row, { peakGiB: r3(m.peak / GiB), reservedGiB: r3(m.reserved / GiB) });
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      Object.assign(row, { status: 'oom', note: e.message });
      break;
    }
    console.error(`${which} ${i ? '' : 'warm-up '}${JSON.stringify(row)}`);
    if (profile) console.error(profile.report());
    if (i === 0) {
      rows.pop();
      started = performance.now();
    }
  }
  return { name: `longshot-${which === 'vamba' ? 'Vamba' : 'Qwen2-VL'}`, device, setupS: r3(setupS), rows };
}

/**
 * Wraps every kernel of a CUDA backend between two timestamps recorded on its stream (no waiting per kernel,
 * so the GPU's timeline stays as it is) and accounts the GPU time per kernel (per shape for GEMMs and
 * attention). `report` reads the timestamps back, prints the accounts and the stream's idle time (the span
 * minus the kernels: host stalls and launch gaps), and clears them.
 */
function profileKernels(backend: Backend) {
  const addon = (backend as unknown as { addon: { profileMark(): number; profileRead(): number[] } }).addon;
  const spans: { key: string; from: number; to: number }[] = [];
  const kernels = ['cast', 'fill', 'unary', 'binary', 'affine', 'matmul', 'rmsNorm', 'layerNorm', 'softmax'];
  kernels.push(
    'rotary',
    'attention',
    'conv1d',
    'ssdScan',
    'embedding',
    'writeSlice',
    'readSlice',
    'permute',
    'upload',
  );
  const b = backend as unknown as Record<string, (...a: unknown[]) => void>;
  for (const k of kernels) {
    const orig = b[k].bind(backend);
    b[k] = (...a: unknown[]) => {
      const from = addon.profileMark();
      orig(...a);
      const to = addon.profileMark();
      const d = a.at(-1) as { m?: number; n?: number; k?: number; sq?: number; skv?: number } | null;
      const key =
        k === 'matmul'
          ? `matmul ${d?.m}x${d?.n}x${d?.k}`
          : k === 'attention'
            ? `attention ${d?.sq}x${d?.skv}`
            : k === 'unary' || k === 'binary'
              ? `${k} ${a[1]}`
              : k;
      spans.push({ key, from, to });
    };
  }
  return {
    report(): string {
      const t = addon.profileRead();
      const acc = new Map<string, { ms: number; n: number }>();
      for (const { key, from, to } of spans) {
        const e = acc.get(key) ?? { ms: 0, n: 0 };
        e.ms += t[to] - t[from];
        e.n++;
        acc.set(key, e);
      }
      spans.length = 0;
      const busy = [...acc.values()].reduce((s, e) => s + e.ms, 0);
      const span = t.length ? t[t.length - 1] : 0;
      const lines = [...acc.entries()]
        .sort((x, y) => y[1].ms - x[1].ms)
        .slice(0, 24)
        .map(([k, e]) => `  ${k.padEnd(34)} ${e.ms.toFixed(1).padStart(9)} ms ${String(e.n).padStart(7)}×`);
      return `GPU span ${span.toFixed(0)} ms: kernels ${busy.toFixed(0)} ms, stream idle ${(span - busy).toFixed(0)} ms\n${lines.join('\n')}`;
    },
  };
}

/** Runs a series in a child process and returns what it printed last (one JSON line). */
function child(cmd: string, argv: string[]): Series | null {
  const r = spawnSync(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Series;
  } catch {
    console.error(`${cmd} ${argv.join(' ')} failed (exit ${r.status}): ${r.stdout.slice(-2000)}`);
    return null;
  }
}

function table(all: Series[]): string {
  const cols = [
    'frames',
    'tokens',
    'vision s',
    'LLM s',
    'prefill s',
    'vision TF/s',
    'LLM TF/s',
    'peak GiB',
    'est GiB',
    'dec tok/s',
    'TTFT2 s',
  ];
  const lines = [];
  for (const s of all) {
    lines.push(`\n${s.name} (${s.device}; weights made in ${s.setupS} s)`);
    lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
    for (const r of s.rows) {
      const f = (x: number | undefined, d = 2) => (x === undefined ? '' : x.toFixed(d));
      lines.push(
        r.status === 'ok'
          ? `| ${r.frames} | ${r.videoTokens} | ${f(r.visionS)} | ${f(r.llmS)} | ${f(r.prefillS)} | ${f(r.visionTFs, 0)} | ${f(r.llmTFs, 0)} | ${f(r.peakGiB, 1)} | ${f(r.estimateGiB, 1)} | ${f(r.decodeTokS, 1)} | ${f(r.ttft2S, 3)} |`
          : `| ${r.frames} | ${r.videoTokens} | ${r.status}: ${r.note?.slice(0, 160)} |`,
      );
    }
  }
  return lines.join('\n');
}

const caption = (r: { series: Series[]; frameSize: string; dtype?: string }) =>
  `${r.series[0]?.device ?? ''} ${r.dtype ?? 'bf16'} random weights ${r.frameSize} frames`;

async function main() {
  if (args.replot) {
    const r = JSON.parse(readFileSync(args.replot, 'utf8')) as { series: Series[]; frameSize: string };
    console.log(table(r.series));
    await writeFile(args.replot.replace(/\.json$/, '.png'), drawFigure(r.series, caption(r)));
    return;
  }
  if (args.child === 'vamba' || args.child === 'qwen2vl') {
    process.stdout.write(`${JSON.stringify(await runSeries(args.child))}\n`);
    return;
  }
  if (args.child === 'timeviper' || args.child === 'timeviper-transv') {
    const { runTimeViperSeries } = await import('./long_video_timeviper.js');
    const frames = (args['timeviper-frames'] ?? (TINY ? '4,8,16' : '1024,5120,10240')).split(',').map(Number);
    const backend = TINY ? cpuBackend() : await getBackend('cuda');
    const s = await runTimeViperSeries(backend, {
      transv: args.child === 'timeviper-transv',
      tiny: TINY,
      frames,
    });
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const wanted = (
    args.series ??
    (TINY ? 'vamba,qwen2vl,timeviper,timeviper-transv' : 'vamba,qwen2vl,peer,timeviper,timeviper-transv')
  ).split(',');
  const common = ['--frames', FRAMES.join(','), '--budget', String(BUDGET_S), '--decode', String(DECODE)];
  for (const k of ['chunk', 'vision-chunk', 'ssd-chunk'] as const)
    if (args[k]) common.push(`--${k}`, args[k]);
  if (args.profile) common.push('--profile');
  if (args['timeviper-frames']) common.push('--timeviper-frames', args['timeviper-frames']);
  const all: Series[] = [];
  for (const name of wanted) {
    const s =
      name === 'peer'
        ? child('python3', ['bench/long_video_peer.py', ...common, ...(TINY ? ['--tiny'] : [])])
        : child(process.execPath, [
            '--import',
            'tsx',
            'bench/long_video.ts',
            '--child',
            name,
            ...common,
            ...(TINY ? ['--tiny'] : []),
          ]);
    if (s) all.push(s);
  }
  const text = table(all);
  console.log(text);
  await mkdir(dirname(resolve(ROOT, OUT)), { recursive: true });
  const result = {
    frameSize: `${WIDTH}x${HEIGHT}`,
    dtype: TINY ? 'f32' : 'bf16',
    decodeTokens: DECODE,
    budgetS: BUDGET_S,
    series: all,
  };
  await writeFile(resolve(ROOT, `${OUT}.json`), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(resolve(ROOT, `${OUT}.png`), drawFigure(all, caption(result)));
  console.log(`\nwrote ${OUT}.json and ${OUT}.png`);
}

await main();
