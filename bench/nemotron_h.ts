/**
 * The Nemotron-H benchmark (issue 17): NVIDIA-Nemotron-Nano-9B-v2's architecture with random bf16 weights
 * made on the GPU (RandomWeights through the checkpoint loader), beside transformers 5.17's
 * NemotronHForCausalLM (bench/nemotron_h_peer.py, same job, same GPU), and beside our own Qwen2-7B (Qwen2-VL-7B's
 * text decoder with random weights) for decoding at the same context.
 *
 *   - prefill time at 8k / 32k / 128k tokens (ours: the prompt in pieces of --piece tokens through the
 *     HybridCache, which bounds the working set; the peer: one forward, as `generate` runs it);
 *   - decode tokens/s at 32k context (greedy, one token per step, each read back as `generate` does);
 *   - aggregate decode tokens/s of --batches concurrent sequences at that context (each continuing its own copy
 *     of one prefilled prompt; their steps batched by generate/batch.ts), where the transformer's per-sequence
 *     K/V reads dominate and the hybrid's few attention layers pay.
 *
 * Targets: hybrid decode ≥ 1.4× our Qwen2-7B decode at 32k; prefill ≥ 3× transformers at 32k.
 * Each series runs in its own process (its own allocator and peak memory), within its share of --budget
 * seconds: a size whose predicted time (from the last one, linear in tokens) would overrun it is skipped and
 * marked so; an out-of-memory is recorded and ends the series.
 *
 *   npx tsx bench/nemotron_h.ts --out docs/benchmarks/nemotron_h       # GPU machine: all three series
 *   npx tsx bench/nemotron_h.ts --tiny                                  # tiny configs on the CPU (smoke test)
 *   options: --sizes 8192,32768,131072 --context 32768 --decode 64 --piece 16384 --budget 200 --batches 1,8,16
 *            --series nemotron,qwen2,peer --out DIR (writes DIR.json)
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
import { RandomWeights } from '../src/io/random-weights.js';
import { NemotronHForCausalLM, parseNemotronHConfig } from '../src/models/nemotron_h/index.js';
import { loadNemotronHParams, nemotronHSpecs } from '../src/models/nemotron_h/weights.js';
import { parseQwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { Qwen2VL } from '../src/models/qwen2vl/model.js';
import { loadQwen2VLParams, qwen2vlSpecs } from '../src/models/qwen2vl/weights.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import { Random } from '../src/util/random.js';

const { values: args } = parseArgs({
  options: {
    tiny: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    context: { type: 'string' },
    decode: { type: 'string' },
    piece: { type: 'string' },
    budget: { type: 'string' },
    series: { type: 'string' },
    batches: { type: 'string' },
    out: { type: 'string' },
    child: { type: 'string' },
  },
});
const TINY = args.tiny;
const CONTEXT = Number(args.context ?? (TINY ? 96 : 32768));
/** Prefill sizes; the decode context is always among them. */
const SIZES = [
  ...new Set([...(args.sizes ?? (TINY ? '48,96' : '8192,32768,131072')).split(',').map(Number), CONTEXT]),
].sort((a, b) => a - b);
const DECODE = Number(args.decode ?? (TINY ? 4 : 64));
const PIECE = Number(args.piece ?? (TINY ? 40 : 16384));
const BUDGET_S = Number(args.budget ?? (TINY ? 120 : 200));
const BATCHES = (args.batches ?? (TINY ? '1,3' : '1,8,16')).split(',').map(Number);
const OUT = args.out ?? (TINY ? join(tmpdir(), 'nemotron_h_tiny') : 'docs/benchmarks/nemotron_h');
const ROOT = join(import.meta.dirname, '..');
const GiB = 2 ** 30;
/** Each series' share of the budget (the peer's torch fallback is the slowest). */
const SHARE: Record<string, number> = { nemotron: 0.35, qwen2: 0.2, peer: 0.45 };

export interface Row {
  tokens: number;
  status: 'ok' | 'oom' | 'skipped';
  prefillS?: number;
  prefillTokS?: number;
  /** Decode tokens/s after this prompt (only at the decode context). */
  decodeTokS?: number;
  peakGiB?: number;
  note?: string;
}

/** Aggregate decoding of `batch` sequences at the decode context. */
export interface BatchRow {
  batch: number;
  status: 'ok' | 'oom' | 'skipped';
  aggregateTokS?: number;
  perSequenceTokS?: number;
  peakGiB?: number;
  note?: string;
}

export interface Series {
  name: string;
  device: string;
  setupS: number;
  rows: Row[];
  batched?: BatchRow[];
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** The Nano-9B-v2 config (docs/research-nemotron-h.md §2), or the tiny parity fixture's. */
function nemotronConfig() {
  const file = TINY
    ? 'test/fixtures/nemotron_h/nano-like/config.json'
    : 'test/fixtures/configs/nemotron-nano-9b-v2/config.json';
  return parseNemotronHConfig(JSON.parse(readFileSync(join(ROOT, file), 'utf8')));
}

/** Qwen2-VL-7B-Instruct's config (its text decoder is Qwen2-7B), or the tiny Vamba fixture's without Vamba. */
function qwen2Config() {
  if (TINY) {
    const json = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/vamba/tiny-a/config.json'), 'utf8'));
    return parseQwen2VLConfig(
      Object.fromEntries(
        Object.entries(json).filter(([k]) => !/^(use_alpha|cross_attn_|distill|vision_mamba)/.test(k)),
      ),
    );
  }
  return parseQwen2VLConfig(
    JSON.parse(readFileSync(join(ROOT, 'test/fixtures/configs/qwen2vl-7b-instruct/config.json'), 'utf8')),
  );
}

/** Ordinary text ids (no special token) of a prompt. */
const textIds = (n: number, vocab: number) => {
  const rng = new Random(5);
  return Array.from({ length: n }, () => rng.int(1, Math.floor(vocab * 0.9)));
};

/** A model as the series drive it: a fresh session per prompt, fed in pieces or whole. */
interface Driver {
  vocab: number;
  /** A session after all but the last prompt token, and the CausalLM to generate from the last one. */
  start(ids: number[], capacity: number): { lm: CausalLM<number[]> } & Disposable;
  /** `ids` prefilled once; each `session()` continues its own copy, generating from the last token it is given. */
  prefix(ids: number[], room: number): { session(): CausalLM<number[]> & Disposable } & Disposable;
}

/** A model's session taking the last prompt token as number[] (what `generate` is given), batchable as the session. */
class Continuation<I> implements CausalLM<number[]>, Disposable {
  constructor(
    readonly inner: CausalLM<I> & Disposable,
    private readonly input: (last: number[]) => I,
  ) {}
  prefill(last: number[]) {
    return this.inner.prefill(this.input(last));
  }
  step(t: number) {
    return this.inner.step(t);
  }
  get batchKey() {
    return this.inner.batchKey;
  }
  stepMany(all: readonly CausalLM<number[]>[], tokens: readonly number[]) {
    return this.inner.stepMany!(
      all.map((c) => (c as Continuation<I>).inner),
      tokens,
    );
  }
  [Symbol.dispose]() {
    this.inner[Symbol.dispose]();
  }
}

async function nemotronDriver(backend: Backend, dtype: 'bf16' | 'f32'): Promise<Driver> {
  const config = nemotronConfig();
  const source = new RandomWeights(nemotronHSpecs(config), { seed: 1 });
  const params = await loadNemotronHParams(source, config, backend, dtype, 'random');
  source[Symbol.dispose]();
  const model = NemotronHForCausalLM.fromParams(config, params);
  return {
    vocab: config.vocab_size,
    start(ids, capacity) {
      const s = model.session({ capacity });
      // All but the last token in pieces through the cache; `generate` runs the last one.
      for (let i = 0; i < ids.length - 1; i += PIECE)
        s.prefill(ids.slice(i, Math.min(i + PIECE, ids.length - 1))).dispose();
      return {
        lm: { prefill: (last) => s.prefill(last), step: (t) => s.step(t) },
        [Symbol.dispose]: () => s[Symbol.dispose](),
      };
    },
    prefix(ids, room) {
      using s = model.session({ capacity: ids.length + room });
      for (let i = 0; i < ids.length; i += PIECE) s.prefill(ids.slice(i, i + PIECE)).dispose();
      const snapshot = s.cache.snapshot();
      return {
        session: () =>
          new Continuation(model.session({ capacity: ids.length + room, from: snapshot }), (last) => last),
        [Symbol.dispose]: () => snapshot[Symbol.dispose](),
      };
    },
  };
}

async function qwen2Driver(backend: Backend, dtype: 'bf16' | 'f32'): Promise<Driver> {
  const config = qwen2Config();
  const source = new RandomWeights(qwen2vlSpecs(config), { seed: 1 });
  const params = await loadQwen2VLParams(source, config, backend, dtype, 'random');
  source[Symbol.dispose]();
  const model = Qwen2VL.fromParams(config, params, backend, dtype);
  return {
    vocab: Math.min(config.text.vocab_size, config.vision_start_token_id),
    start(ids, capacity) {
      // A Qwen2-VL session takes its prompt in one prefill (M-RoPE positions are computed over all of it).
      const s = model.session({ capacity });
      return {
        lm: { prefill: () => s.prefill({ inputIds: ids }), step: (t) => s.step(t) },
        [Symbol.dispose]: () => s[Symbol.dispose](),
      };
    },
    prefix(ids, room) {
      const prefix = model.prefillPrefix({ inputIds: ids }, { room });
      return {
        session: () =>
          new Continuation(model.session({ capacity: ids.length + room, prefix }), (last) => ({
            inputIds: [...ids, ...last],
          })),
        [Symbol.dispose]: () => prefix[Symbol.dispose](),
      };
    },
  };
}

/** Prefill time (to the first generated token, read back) and the decode rate after it. */
async function measure(d: Driver, backend: Backend, tokens: number, decode: number): Promise<Row> {
  const ids = textIds(tokens, d.vocab);
  backend.resetPeak();
  const t0 = performance.now();
  using run = d.start(ids, tokens + decode + 1);
  let first = 0;
  let n = 0;
  for await (const _ of generate(run.lm, [ids[ids.length - 1]], { maxNewTokens: decode + 1 }))
    if (++n === 1) first = performance.now();
  const end = performance.now();
  const prefillS = (first - t0) / 1000;
  return {
    tokens,
    status: 'ok',
    prefillS: r3(prefillS),
    prefillTokS: Math.round(tokens / prefillS),
    ...(decode ? { decodeTokS: r3(((n - 1) * 1000) / (end - first)) } : {}),
    peakGiB: r3(backend.memory().peak / GiB),
  };
}

/**
 * `batch` sequences decoding `decode` tokens each after one shared prompt of `tokens` (prefilled once, each
 * sequence on its own copy): tokens/s over all of them, from the moment every one has its first token.
 */
async function measureBatch(
  d: Driver,
  backend: Backend,
  tokens: number,
  batch: number,
  decode: number,
): Promise<BatchRow> {
  const ids = textIds(tokens, d.vocab);
  backend.resetPeak();
  using shared = d.prefix(ids.slice(0, -1), decode + 2);
  const sessions = Array.from({ length: batch }, () => shared.session());
  try {
    let started = 0;
    let t0 = 0;
    await Promise.all(
      sessions.map(async (lm) => {
        let n = 0;
        for await (const _ of generate(lm, [ids[ids.length - 1]], {
          maxNewTokens: decode + 1,
          stopTokens: [],
        }))
          if (++n === 1 && ++started === batch) t0 = performance.now();
      }),
    );
    const s = (performance.now() - t0) / 1000;
    return {
      batch,
      status: 'ok',
      aggregateTokS: r3((batch * decode) / s),
      perSequenceTokS: r3(decode / s),
      peakGiB: r3(backend.memory().peak / GiB),
    };
  } finally {
    for (const s of sessions) s[Symbol.dispose]();
  }
}

async function runSeries(which: 'nemotron' | 'qwen2', budgetS: number): Promise<Series> {
  const backend: Backend = TINY ? cpuBackend() : await getBackend('cuda');
  const dtype = TINY ? 'f32' : 'bf16';
  const t0 = performance.now();
  const d = which === 'nemotron' ? await nemotronDriver(backend, dtype) : await qwen2Driver(backend, dtype);
  await backend.synchronize();
  const setupS = r3((performance.now() - t0) / 1000);
  const started = performance.now();
  // Warm-up (kernels, plans, allocator), not recorded.
  await measure(d, backend, Math.min(SIZES[0], 1024), 2);
  const sizes = which === 'qwen2' ? [CONTEXT] : SIZES;
  const rows: Row[] = [];
  let last: Row | undefined;
  for (const tokens of sizes) {
    const left = budgetS - (performance.now() - started) / 1000;
    const predicted = last?.prefillS ? (last.prefillS * tokens) / last.tokens + DECODE * 0.05 : 0;
    if (predicted > left) {
      rows.push({
        tokens,
        status: 'skipped',
        note: `predicted ${predicted.toFixed(0)} s > ${left.toFixed(0)} s left`,
      });
      continue;
    }
    try {
      last = await measure(d, backend, tokens, tokens === CONTEXT ? DECODE : 0);
      rows.push(last);
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      rows.push({ tokens, status: 'oom', note: e.message.slice(0, 200) });
      break;
    }
  }
  const batched: BatchRow[] = [];
  for (const batch of BATCHES) {
    if ((performance.now() - started) / 1000 > budgetS) {
      batched.push({ batch, status: 'skipped', note: 'over the series budget' });
      continue;
    }
    try {
      batched.push(await measureBatch(d, backend, CONTEXT, batch, DECODE));
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      batched.push({ batch, status: 'oom', note: e.message.slice(0, 200) });
      break;
    }
  }
  const device = 'device' in backend ? (backend as { device: { name: string } }).device.name : 'cpu';
  return {
    name: which === 'nemotron' ? 'longshot Nemotron-H (Nano-9B-v2)' : 'longshot Qwen2-7B',
    device,
    setupS,
    rows,
    batched,
  };
}

/** Runs a series in a child process and returns what it printed last (one JSON line). */
function child(cmd: string, argv: string[]): Series | null {
  const r = spawnSync(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const lastLine = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(lastLine) as Series;
  } catch {
    console.error(`${cmd} ${argv.join(' ')} failed (exit ${r.status}): ${r.stdout.slice(-2000)}`);
    return null;
  }
}

const at = (s: Series | undefined, tokens: number) =>
  s?.rows.find((r) => r.tokens === tokens && r.status === 'ok');

/** The two ratios, where both sides were measured. */
function targets(all: Series[]) {
  const [ours, qwen2, peer] = ['longshot Nemotron-H', 'longshot Qwen2', 'transformers'].map((p) =>
    all.find((s) => s.name.startsWith(p)),
  );
  const ratio = (a?: number, b?: number) => (a && b ? r3(a / b) : null);
  const agg = (s: Series | undefined, b: number) =>
    s?.batched?.find((r) => r.batch === b && r.status === 'ok')?.aggregateTokS;
  return {
    decodeVsQwen2: {
      context: CONTEXT,
      ratio: ratio(at(ours, CONTEXT)?.decodeTokS, at(qwen2, CONTEXT)?.decodeTokS),
      target: 1.4,
    },
    batchedDecodeVsQwen2: BATCHES.map((b) => ({ batch: b, ratio: ratio(agg(ours, b), agg(qwen2, b)) })),
    prefillVsTransformers: {
      tokens: CONTEXT,
      ratio: ratio(at(peer, CONTEXT)?.prefillS, at(ours, CONTEXT)?.prefillS),
      target: 3,
    },
  };
}

function table(all: Series[]): string {
  const lines: string[] = [];
  for (const s of all) {
    lines.push(`\n${s.name} (${s.device}; weights made in ${s.setupS} s)`);
    lines.push('| tokens | prefill s | prefill tok/s | decode tok/s | peak GiB |', '|---|---|---|---|---|');
    for (const r of s.rows)
      lines.push(
        r.status === 'ok'
          ? `| ${r.tokens} | ${r.prefillS} | ${r.prefillTokS} | ${r.decodeTokS ?? ''} | ${r.peakGiB} |`
          : `| ${r.tokens} | ${r.status}: ${r.note ?? ''} | | | |`,
      );
  }
  for (const s of all.filter((x) => x.batched?.length)) {
    lines.push(`\n${s.name}: ${BATCHES.join(' / ')} sequences decoding together at ${CONTEXT}`);
    lines.push('| sequences | aggregate tok/s | per sequence tok/s | peak GiB |', '|---|---|---|---|');
    for (const r of s.batched!)
      lines.push(
        r.status === 'ok'
          ? `| ${r.batch} | ${r.aggregateTokS} | ${r.perSequenceTokS} | ${r.peakGiB} |`
          : `| ${r.batch} | ${r.status}: ${r.note ?? ''} | | |`,
      );
  }
  const t = targets(all);
  for (const b of t.batchedDecodeVsQwen2)
    lines.push(`hybrid / Qwen2-7B aggregate decode, ${b.batch} sequences at ${CONTEXT}: ${b.ratio ?? 'n/a'}`);
  lines.push(
    `\nhybrid decode / Qwen2-7B decode at ${CONTEXT}: ${t.decodeVsQwen2.ratio ?? 'n/a'} (target ≥ 1.4)`,
    `transformers prefill / ours at ${CONTEXT}: ${t.prefillVsTransformers.ratio ?? 'n/a'} (target ≥ 3)`,
  );
  return lines.join('\n');
}

async function main() {
  if (args.child === 'nemotron' || args.child === 'qwen2') {
    process.stdout.write(`${JSON.stringify(await runSeries(args.child, BUDGET_S))}\n`);
    return;
  }
  const wanted = (args.series ?? (TINY ? 'nemotron,qwen2' : 'nemotron,qwen2,peer')).split(',');
  const common = (name: string) => [
    '--sizes',
    SIZES.join(','),
    '--context',
    String(CONTEXT),
    '--decode',
    String(DECODE),
    '--budget',
    String(Math.round(BUDGET_S * (SHARE[name] ?? 1))),
    ...(TINY ? ['--tiny'] : []),
  ];
  const all: Series[] = [];
  for (const name of wanted) {
    const s =
      name === 'peer'
        ? child('python3', ['bench/nemotron_h_peer.py', ...common(name)])
        : child(process.execPath, [
            '--import',
            'tsx',
            'bench/nemotron_h.ts',
            '--child',
            name,
            '--piece',
            String(PIECE),
            '--batches',
            BATCHES.join(','),
            ...common(name),
          ]);
    if (s) all.push(s);
  }
  console.log(table(all));
  const result = {
    model: 'NVIDIA-Nemotron-Nano-9B-v2 architecture, random weights',
    dtype: TINY ? 'f32' : 'bf16',
    context: CONTEXT,
    decodeTokens: DECODE,
    pieceTokens: PIECE,
    budgetS: BUDGET_S,
    series: all,
    targets: targets(all),
  };
  await mkdir(dirname(resolve(ROOT, OUT)), { recursive: true });
  await writeFile(resolve(ROOT, `${OUT}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwrote ${OUT}.json`);
}

await main();
