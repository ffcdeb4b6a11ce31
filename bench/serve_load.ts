/**
 * Load test of the server (issue 21): Vamba-7B's or Qwen2-VL-7B's architecture with random bf16 weights made on
 * the GPU (as bench/long_video.ts makes them), behind `createServer` on 127.0.0.1, driven over HTTP by
 * streaming clients. A bench engine stands in for VideoLM: synthetic frames (644×364 after smart_resize) instead
 * of a decoded file, and token ids as text (`t123 `) instead of a tokenizer, so every SSE chunk is one token.
 *
 *   1. single stream: one question about a --frames video; decode tok/s from the chunks' arrival, then a second
 *      one traced: the GPU's busy fraction over the decode (timestamps recorded on the stream around every
 *      kernel), launches/token and the traced rate;
 *   2. --concurrency 8,32: that many questions at once about the same video; aggregate tok/s, p50/p99 time to
 *      first token and per-token latency;
 *   3. --interfere 16 questions decoding, then a new --big-frames video arrives: their per-token latency while
 *      it is encoded (chunked prefill: pieces of --prefill-piece video tokens, one batched decode step between
 *      two; 0 encodes it at once) against before, the tokens they got meanwhile, and /metrics' encode
 *      progress scraped while it runs. The questions are cut off once the video's answer has come.
 *
 *   node --import tsx bench/serve_load.ts --arch vamba --out docs/benchmarks/serve_load_vamba   # GPU machine
 *   node --import tsx bench/serve_load.ts --arch qwen2vl --tiny                                # CPU smoke test
 *   options: --frames 256 --big-frames 1024 --decode 128 --concurrency 8,32 --interfere 16 (0: no phase 3)
 *            --budget 150 --prefill-piece 1024 --scenarios single,concurrent,interfere
 *            --memory-budget <GiB> (the server's; default 92% of the device's memory)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/cuda/index.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { Answer, type Generation } from '../src/facade/answer.js';
import type { ChatEngine, ChatOptions, EncodeOptions, VideoHandle } from '../src/facade/engine.js';
import { generateText } from '../src/facade/text-generation.js';
import type { ChatTurn, ModelInfo } from '../src/facade/types.js';
import type { Tokenizer } from '../src/io/tokenizer.js';
import type { EncodePlan } from '../src/models/family.js';
import { defaultMemoryBudget } from '../src/models/fit.js';
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { Qwen2VL, type Qwen2VLPrefix } from '../src/models/qwen2vl/model.js';
import { decodeCacheOf, qwen2vlEncodePlan } from '../src/models/qwen2vl/size.js';
import {
  encodeVisionStream,
  encodeVisionStreamInPieces,
  type GridTHW,
  type PixelBatch,
} from '../src/models/qwen2vl/vision.js';
import { loadQwen2VLParams, qwen2vlSpecs } from '../src/models/qwen2vl/weights.js';
import { MambaInit, vambaConfigJson } from '../src/models/vamba/convert.js';
import { Vamba } from '../src/models/vamba/model.js';
import { vambaEncodePlan } from '../src/models/vamba/size.js';
import type { VambaVideoHandle } from '../src/models/vamba/video-handle.js';
import { loadVambaParams, vambaSpecs } from '../src/models/vamba/weights.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import { createServer } from '../src/serve/app.js';
import { Random } from '../src/util/random.js';

const { values: args } = parseArgs({
  options: {
    arch: { type: 'string', default: 'vamba' },
    tiny: { type: 'boolean', default: false },
    frames: { type: 'string' },
    'big-frames': { type: 'string' },
    decode: { type: 'string' },
    concurrency: { type: 'string' },
    interfere: { type: 'string' },
    budget: { type: 'string' },
    'memory-budget': { type: 'string' },
    'prefill-piece': { type: 'string' },
    'interfere-tokens': { type: 'string' },
    scenarios: { type: 'string', default: 'single,concurrent,interfere' },
    out: { type: 'string' },
  },
});
const ARCH = args.arch === 'qwen2vl' ? 'qwen2vl' : 'vamba';
const TINY = args.tiny;
const FRAMES = Number(args.frames ?? (TINY ? 8 : 256));
const BIG = Number(args['big-frames'] ?? (TINY ? 32 : 1024));
const DECODE = Number(args.decode ?? (TINY ? 12 : 128));
const CONCURRENCY = (args.concurrency ?? (TINY ? '4' : '8,32')).split(',').map(Number);
const INTERFERE = Number(args.interfere ?? (TINY ? 4 : 16));
const BUDGET_S = Number(args.budget ?? (TINY ? 120 : 150));
const PIECE = Number(args['prefill-piece'] ?? (TINY ? 8 : 1024));
const INTERFERE_TOKENS = Number(args['interfere-tokens'] ?? (TINY ? 4000 : 3000));
const SCENARIOS = new Set(args.scenarios.split(','));
const OUT = args.out ?? join(tmpdir(), `serve_load_${ARCH}${TINY ? '_tiny' : ''}`);
const ROOT = join(import.meta.dirname, '..');
const [HEIGHT, WIDTH] = TINY ? [24, 40] : [364, 644];
const r3 = (x: number) => Math.round(x * 1000) / 1000;

// ---- the model with random weights ---------------------------------------------------------------------

function config(): Qwen2VLConfig {
  if (TINY) {
    const json = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/vamba/tiny-a/config.json'), 'utf8'));
    return parseQwen2VLConfig(
      ARCH === 'vamba'
        ? json
        : Object.fromEntries(
            Object.entries(json).filter(([k]) => !/^(use_alpha|cross_attn_|distill|vision_mamba)/.test(k)),
          ),
    );
  }
  const qwen2vl = JSON.parse(
    readFileSync(join(ROOT, 'test/fixtures/configs/qwen2vl-7b-instruct/config.json'), 'utf8'),
  );
  return parseQwen2VLConfig(ARCH === 'vamba' ? vambaConfigJson(qwen2vl) : qwen2vl);
}

async function load(backend: Backend, c: Qwen2VLConfig): Promise<Vamba | Qwen2VL> {
  const dtype = TINY ? 'f32' : 'bf16';
  if (ARCH === 'vamba') {
    const init = new MambaInit(c, 0, 0.5);
    const special = (name: string, shape: readonly number[]) =>
      /layers\.\d+\.(alpha|vision_mixer\.mixer\.(D|A_log|dt_bias|conv1d\.weight|conv1d\.bias))$/.test(name)
        ? (init.make(name, shape, 'F32').data as Float32Array)
        : null;
    const { RandomWeights } = await import('../src/io/random-weights.js');
    using source = new RandomWeights(vambaSpecs(c), { seed: 1, special });
    const params = await loadVambaParams(source, c, backend, dtype, 'random');
    return Vamba.fromParams(c, params, backend, dtype, 'random:vamba');
  }
  const { RandomWeights } = await import('../src/io/random-weights.js');
  using source = new RandomWeights(qwen2vlSpecs(c), { seed: 1 });
  return Qwen2VL.fromParams(c, await loadQwen2VLParams(source, c, backend, dtype, 'random'), backend, dtype);
}

/** Synthetic preprocessed pixels, `perBatch` temporal groups at a time; `done` after each batch. */
function* pixelBatches(
  groups: number,
  patchesPerGroup: number,
  rowLen: number,
  perBatch: number,
  done?: (frames: number) => void,
): Generator<PixelBatch> {
  const groupLen = patchesPerGroup * rowLen;
  const rng = new Random(7);
  const pool = Array.from({ length: 3 }, () =>
    Float32Array.from({ length: groupLen }, () => rng.uniform(-1.8, 2.1)),
  );
  const buf = new Float32Array(perBatch * groupLen);
  for (let g0 = 0; g0 < groups; g0 += perBatch) {
    const n = Math.min(perBatch, groups - g0);
    for (let i = 0; i < n; i++) buf.set(pool[(g0 + i) % pool.length], i * groupLen);
    yield { pixels: buf.subarray(0, n * groupLen), groups: n };
    done?.(2 * (g0 + n));
  }
}

// ---- the engine the server drives ----------------------------------------------------------------------

/** Token ids as text: every id one piece, so each SSE chunk is one token. */
const idText: Tokenizer = {
  streamDecoder: () => ({ push: (...ids: number[]) => ids.map((i) => `t${i} `).join(''), flush: () => '' }),
} as unknown as Tokenizer;

class BenchVideo implements VideoHandle {
  readonly timestampsSec = [];
  readonly decode;
  disposed = false;

  constructor(
    readonly label: string,
    frames: number,
    readonly tokens: number,
    readonly bytes: number,
    private readonly free: () => void,
    readonly vamba?: VambaVideoHandle,
    readonly qwen?: { prefix: Qwen2VLPrefix; ids: number[] },
  ) {
    this.decode = { kind: 'video' as const, requested: frames, decoded: frames, skipped: [], lostRanges: [] };
  }

  dispose(): void {
    if (!this.disposed) this.free();
    this.disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

class BenchEngine implements ChatEngine {
  readonly info: ModelInfo;
  /** When the last encode of a video of so many frames started and ended (performance.now()). */
  readonly encodes = new Map<number, { start: number; end: number }>();

  constructor(
    readonly model: Vamba | Qwen2VL,
    readonly backend: Backend,
    readonly c: Qwen2VLConfig,
  ) {
    const t = c.text;
    const dtype = model instanceof Vamba ? model.dtype : model.dtype;
    this.info = {
      id: 'bench',
      dir: '',
      architecture: ARCH === 'vamba' ? 'vamba' : 'qwen2_vl',
      parameters: 0,
      weightBytes: 0,
      dtype,
      device: backend.name,
      layers: t.num_hidden_layers,
      hiddenSize: t.hidden_size,
      videoRequired: ARCH === 'vamba',
      decodeCache: decodeCacheOf(t, dtype),
    };
  }

  /** The server's admission estimate of an encode (as the runners', for this engine's synthetic frames). */
  async planEncode(path: string, opts: EncodeOptions = {}): Promise<EncodePlan> {
    const frames = Number(/v(\d+)/.exec(basename(path))?.[1]);
    const v = this.c.vision;
    const grid: GridTHW = [frames / 2, HEIGHT / v.patch_size, WIDTH / v.patch_size];
    const common = { grid, framesPerBatch: 16, pieceTokens: opts.pieces?.tokens, dtype: this.model.dtype };
    return this.model instanceof Vamba
      ? vambaEncodePlan(this.c, common)
      : qwen2vlEncodePlan(this.c, {
          ...common,
          prefixTextTokens: PREFIX_TEXT + 2,
          room: PREFIX_ROOM,
          continues: () => true, // this engine's questions all continue the video's prefix
        });
  }

  /**
   * The frame count is in the file's name (`v256.video`); the frames are synthetic. With `pieces` (the server's
   * chunked prefill) the vision tower and the model's video prefill run in pieces, as VideoLM's do.
   */
  async encodeVideo(path: string, opts: EncodeOptions = {}): Promise<VideoHandle> {
    const frames = Number(/v(\d+)/.exec(basename(path))?.[1]);
    const { pieces, progress } = opts;
    const start = performance.now();
    progress?.start?.(frames);
    try {
      return await this.encode(path, frames, pieces, progress?.frames);
    } finally {
      progress?.finish?.();
      this.encodes.set(frames, { start, end: performance.now() });
    }
  }

  private async encode(
    path: string,
    frames: number,
    pieces: EncodeOptions['pieces'],
    done?: (frames: number) => void,
  ): Promise<VideoHandle> {
    const v = this.c.vision;
    const g: GridTHW = [frames / 2, HEIGHT / v.patch_size, WIDTH / v.patch_size];
    const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
    const merged = [g[0], g[1] / v.spatial_merge_size, g[2] / v.spatial_merge_size] as const;
    // 8 groups (16 frames) a vision-tower call, as the runners do; with pieces, about pieces.tokens tokens.
    const perBatch = pieces
      ? Math.min(8, Math.max(1, Math.floor(pieces.tokens / (merged[1] * merged[2]))))
      : 8;
    const batches = pixelBatches(g[0], g[1] * g[2], rowLen, perBatch, done);
    const tokens = merged[0] * merged[1] * merged[2];
    const vision = (m: Vamba | Qwen2VL) =>
      pieces
        ? encodeVisionStreamInPieces(m.visual, batches, g, m.dtype, pieces.pause)
        : encodeVisionStream(m.visual, batches, g, m.dtype);
    let video: BenchVideo;
    if (this.model instanceof Vamba) {
      const m = this.model;
      const V = await vision(m);
      const key = {
        model: m.modelId,
        video: path,
        sampling: 'all',
        size: `${WIDTH}x${HEIGHT}`,
        dtype: m.dtype,
      };
      if (pieces) await pieces.pause();
      const handle = pieces
        ? await m.encodeVideoTokensInPieces(V, merged, key, { pieces })
        : m.encodeVideoTokens(V, merged, key);
      video = new BenchVideo(path, frames, tokens, handle.bytes, () => handle[Symbol.dispose](), handle);
    } else {
      const m = this.model;
      const embeds = await vision(m);
      const ids = [
        ...textIds(PREFIX_TEXT, 3),
        this.c.vision_start_token_id,
        ...new Array(tokens).fill(this.c.video_token_id),
        this.c.vision_end_token_id,
      ];
      const inputs = { inputIds: ids, videoGridThw: [g], videoEmbeds: embeds };
      if (pieces) await pieces.pause();
      const prefix = await (pieces
        ? m.prefillPrefixInPieces(inputs, { room: PREFIX_ROOM, pieces })
        : Promise.resolve().then(() => m.prefillPrefix(inputs, { room: PREFIX_ROOM }))
      ).finally(() => embeds.dispose());
      video = new BenchVideo(path, frames, tokens, prefix.bytes, () => prefix[Symbol.dispose](), undefined, {
        prefix,
        ids,
      });
    }
    await this.backend.synchronize();
    return video;
  }

  chat(turns: ChatTurn[], opts: ChatOptions = {}): Answer {
    return new Answer(this.generation(turns, opts));
  }

  private async *generation(turns: ChatTurn[], opts: ChatOptions): Generation {
    const video = opts.video as BenchVideo;
    const question = textIds(16, hash(turns.at(-1)?.content ?? ''));
    const room = opts.maxNewTokens ?? 512;
    const common = { tokenizer: idText, generationConfig: null, eosTokenIds: [] };
    let r: { completionTokens: number; finishReason: 'stop' | 'length' };
    if (video.vamba) {
      using session = (this.model as Vamba).session(video.vamba, { capacity: question.length + room });
      r = yield* generateText({ ...common, session, input: question, promptIds: question }, opts);
    } else {
      const ids = [...video.qwen!.ids, ...question];
      using session = (this.model as Qwen2VL).session({
        capacity: ids.length + room,
        prefix: video.qwen!.prefix,
      });
      r = yield* generateText({ ...common, session, input: { inputIds: ids }, promptIds: ids }, opts);
    }
    return {
      usage: {
        promptTokens: question.length,
        videoTokens: video.tokens,
        completionTokens: r.completionTokens,
        totalTokens: question.length + video.tokens + r.completionTokens,
      },
      finishReason: r.finishReason,
    };
  }
}

/** Text tokens before a Qwen2-VL video in the prefix, and the room after it. */
const PREFIX_TEXT = 12;
const PREFIX_ROOM = 256;

/** Ordinary text ids (below the tiny vocabulary's special tokens too). */
const textIds = (n: number, seed: number) => {
  const rng = new Random(seed);
  return Array.from({ length: n }, () => rng.int(1, TINY ? 200 : 1000));
};
const hash = (s: string) => [...s].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7);

// ---- the clients ---------------------------------------------------------------------------------------

/** One streamed request: when it was sent, when each token arrived (filled in as they arrive). */
interface Trace {
  sent: number;
  tokens: number[];
  status: number;
  error?: string;
  /** Cut off by the bench (the interfering questions once the new video's answer came). */
  cut?: boolean;
}

const ask = (url: string, video: string, question: string, maxTokens: number) =>
  streamed(url, video, question, maxTokens).done;

/** A streamed question: its trace, growing as tokens arrive, and the trace once the stream ended. */
function streamed(url: string, video: string, question: string, maxTokens: number, signal?: AbortSignal) {
  const trace: Trace = { sent: performance.now(), tokens: [], status: 0 };
  const done = (async () => {
    try {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'bench',
          stream: true,
          max_tokens: maxTokens,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'video_url', video_url: { url: video } },
                { type: 'text', text: question },
              ],
            },
          ],
        }),
        signal,
      });
      trace.status = res.status;
      if (!res.ok || !res.body) {
        trace.error = (await res.text()).slice(0, 300);
        console.error(`request failed: ${res.status} ${trace.error}`);
        return trace;
      }
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (event.startsWith('data: {') && event.includes('"content":"t'))
            trace.tokens.push(performance.now());
          else if (event.startsWith('data: {"error"')) trace.error = event.slice(6, 300);
          i = buf.indexOf('\n\n');
        }
      }
    } catch (e) {
      if (!signal?.aborted) throw e;
      trace.cut = true;
    }
    return trace;
  })();
  return { trace, done };
}

const quantile = (xs: number[], q: number) => {
  if (!xs.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const gaps = (t: Trace) => t.tokens.slice(1).map((x, i) => x - t.tokens[i]);

/** Latency statistics of traces that all succeeded: TTFT and per-token latency (ms), aggregate tok/s. */
function summarise(traces: Trace[]) {
  const ok = traces.filter((t) => t.status === 200 && t.tokens.length && !t.error);
  for (const t of traces) if (t.error) console.error(`request failed: ${t.error}`);
  const ttft = ok.map((t) => t.tokens[0] - t.sent);
  const itl = ok.flatMap(gaps);
  const tokens = ok.reduce((n, t) => n + t.tokens.length, 0);
  const start = Math.min(...traces.map((t) => t.sent));
  const end = Math.max(...ok.map((t) => t.tokens.at(-1)!));
  const firstAll = Math.max(...ok.map((t) => t.tokens[0]));
  const decodeTokens = ok.reduce((n, t) => n + t.tokens.filter((x) => x > firstAll).length, 0);
  // While every request decodes: from the last first token to the first last token (the batch is full).
  const firstDone = Math.min(...ok.map((t) => t.tokens.at(-1)!));
  const fullTokens = ok.reduce(
    (n, t) => n + t.tokens.filter((x) => x > firstAll && x <= firstDone).length,
    0,
  );
  return {
    requests: traces.length,
    ok: ok.length,
    tokens,
    wallS: r3((end - start) / 1000),
    aggregateTokS: r3((tokens * 1000) / (end - start)),
    /** Tokens/s while every request was decoding (after the last first token). */
    decodeTokS: end > firstAll ? r3((decodeTokens * 1000) / (end - firstAll)) : null,
    /** Tokens/s while all requests were decoding at once (the steady state of this concurrency). */
    fullBatchTokS: firstDone > firstAll ? r3((fullTokens * 1000) / (firstDone - firstAll)) : null,
    ttftMs: { p50: r3(quantile(ttft, 0.5)), p99: r3(quantile(ttft, 0.99)) },
    perTokenMs: { p50: r3(quantile(itl, 0.5)), p99: r3(quantile(itl, 0.99)) },
  };
}

/** Stream timestamps around every kernel launch of `backend` (CUDA): the GPU's busy time over a window. */
function kernelTrace(backend: Backend) {
  const addon = (backend as unknown as { addon?: { profileMark(): number; profileRead(): number[] } }).addon;
  if (!addon) return null;
  const spans: [number, number][] = [];
  let on = false;
  const b = backend as unknown as Record<string, unknown>;
  const skip = new Set(['allocate', 'release', 'upload', 'download', 'memory', 'resetPeak', 'synchronize']);
  const proto = Object.getPrototypeOf(backend) as Record<string, unknown>;
  const names = [...Object.getOwnPropertyNames(proto), ...Object.keys(b)].filter(
    (k) => typeof b[k] === 'function' && k !== 'constructor' && !skip.has(k) && !k.startsWith('_'),
  );
  for (const k of new Set(names)) {
    const orig = (b[k] as (...a: unknown[]) => unknown).bind(backend);
    b[k] = (...a: unknown[]) => {
      if (!on) return orig(...a);
      const from = addon.profileMark();
      const r = orig(...a);
      spans.push([from, addon.profileMark()]);
      return r;
    };
  }
  return {
    start() {
      addon.profileRead();
      spans.length = 0;
      on = true;
      addon.profileMark();
    },
    /** Busy fraction of the stream between start and now, and the launches made. */
    stop() {
      on = false;
      addon.profileMark();
      const t = addon.profileRead();
      const busy = spans.reduce((s, [f, e]) => s + t[e] - t[f], 0);
      return { busyFraction: r3(busy / (t.at(-1) ?? 1)), spanMs: r3(t.at(-1) ?? 0), launches: spans.length };
    },
  };
}

async function main() {
  const backend: Backend = TINY ? cpuBackend() : await getBackend('cuda');
  const c = config();
  const t0 = performance.now();
  const model = await load(backend, c);
  await backend.synchronize();
  const setupS = r3((performance.now() - t0) / 1000);
  const started = performance.now();
  const left = () => BUDGET_S - (performance.now() - started) / 1000;
  const trace = kernelTrace(backend);
  const engine = new BenchEngine(model, backend, c);
  const dir = mkdtempSync(join(tmpdir(), 'longshot-serve-load-'));
  for (const f of [FRAMES, BIG]) writeFileSync(join(dir, `v${f}.video`), `synthetic ${f} frames\n`);
  const server = createServer(engine, {
    modelId: 'bench',
    concurrency: 64,
    maxQueue: 256,
    memoryBudgetBytes: args['memory-budget']
      ? Number(args['memory-budget']) * 2 ** 30
      : defaultMemoryBudget(backend),
    cacheEntries: 2,
    media: { allowedRoot: dir },
    prefillPieceTokens: PIECE,
  });
  const result: Record<string, unknown> = {
    arch: ARCH,
    device: 'device' in backend ? (backend as { device: { name: string } }).device.name : 'cpu',
    frames: FRAMES,
    decodeTokens: DECODE,
    setupS,
  };
  try {
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
    const video = `v${FRAMES}.video`;
    // Encodes the video (kept by the server's cache for every later question) and warms the kernels up.
    const warm = await ask(url, video, 'warm up', 8);
    result.encodeS = r3((warm.tokens[0] - warm.sent) / 1000);

    let tokS: number | null = null;
    if (SCENARIOS.has('single')) {
      // The rate comes from an untraced answer (the trace's two stream events per launch cost host time);
      // a second, traced one gives the GPU's busy fraction and the launches per token.
      const rate = (t: { tokens: number[] }) =>
        r3(((t.tokens.length - 1) * 1000) / (t.tokens.at(-1)! - t.tokens[0]));
      const single = await ask(url, video, 'single', DECODE);
      trace?.start();
      const traced = trace ? await ask(url, video, 'single traced', DECODE) : null;
      const gpu = trace?.stop();
      tokS = rate(single);
      result.single = {
        ...summarise([single]),
        decodeTokS: tokS,
        ...(gpu && traced
          ? {
              gpuBusy: gpu.busyFraction,
              launchesPerToken: r3(gpu.launches / traced.tokens.length),
              tracedTokS: rate(traced),
            }
          : {}),
      };
    }

    if (SCENARIOS.has('concurrent')) {
      const concurrent: Record<string, unknown>[] = [];
      for (const n of CONCURRENCY) {
        if (left() < 10) {
          concurrent.push({ concurrency: n, skipped: 'budget' });
          continue;
        }
        const traces = await Promise.all(
          Array.from({ length: n }, (_, i) => ask(url, video, `q${n}-${i}`, DECODE)),
        );
        const sum = summarise(traces);
        const speedup = sum.decodeTokS && tokS ? r3(sum.decodeTokS / tokS) : null;
        const fullBatchSpeedup = sum.fullBatchTokS && tokS ? r3(sum.fullBatchTokS / tokS) : null;
        concurrent.push({ concurrency: n, ...sum, speedup, fullBatchSpeedup });
      }
      result.concurrent = concurrent;
    }

    if (SCENARIOS.has('interfere') && INTERFERE > 0) {
      if (left() > 20) result.interference = await interfere(url, video, engine);
      else result.interference = { skipped: 'budget' };
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(result, null, 2));
  await mkdir(dirname(resolve(ROOT, OUT)), { recursive: true });
  await writeFile(resolve(ROOT, `${OUT}.json`), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(resolve(ROOT, `${OUT}.md`), markdown(result));
  console.error(`wrote ${OUT}.json and ${OUT}.md`);
}

/**
 * INTERFERE questions decode (cut off once they are no longer needed); once every one has its first token and
 * a baseline window has passed, a new BIG-frame video arrives. Their per-token latency before and while it is
 * encoded, the tokens they got meanwhile, and /metrics' encode gauges scraped while it runs.
 */
async function interfere(url: string, video: string, engine: BenchEngine) {
  const stop = new AbortController();
  const runs = Array.from({ length: INTERFERE }, (_, i) =>
    streamed(url, video, `i${i}`, INTERFERE_TOKENS, stop.signal),
  );
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const ended = new Set<Trace>();
  for (const r of runs) void r.done.finally(() => ended.add(r.trace));
  while (runs.some((r) => !r.trace.tokens.length && !ended.has(r.trace))) await pause(10);
  await pause(TINY ? 300 : 3000);
  const memoryAtArrival = await memoryGauges(url);
  const arrive = performance.now();
  const big = streamed(url, `v${BIG}.video`, 'big', 4);
  const scrapes: { encodes: number; progress: number }[] = [];
  let answered = false;
  void big.done.finally(() => {
    answered = true;
  });
  while (!answered && !big.trace.tokens.length) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    scrapes.push({
      encodes: gauge('longshot_video_encodes_running'),
      progress: gauge('longshot_video_encode_progress'),
    });
    await pause(TINY ? 20 : 250);
  }
  const bigTrace = await big.done;
  const memoryAfter = await memoryGauges(url);
  const encoded = bigTrace.tokens[0] ?? performance.now();
  await pause(TINY ? 50 : 500);
  stop.abort();
  const all = await Promise.all(runs.map((r) => r.done));
  for (const t of [...all, bigTrace]) if (t.error) console.error(`request failed: ${t.error}`);
  const inWindow = (lo: number, hi: number) =>
    all.flatMap((t) => gaps(t).filter((_, i) => t.tokens[i + 1] >= lo && t.tokens[i + 1] < hi));
  const before = inWindow(0, arrive);
  // During: tokens that arrived while the engine encoded the video (else: until its answer began).
  const enc = engine.encodes.get(BIG);
  const during = enc ? inWindow(enc.start, enc.end) : inWindow(arrive, encoded);
  const stats = (xs: number[]) => ({
    p50: r3(quantile(xs, 0.5)),
    p99: r3(quantile(xs, 0.99)),
    max: r3(Math.max(...xs, 0)),
  });
  const ratioP50 = r3(quantile(during, 0.5) / quantile(before, 0.5));
  return {
    questions: INTERFERE,
    bigFrames: BIG,
    prefillPieceTokens: PIECE,
    bigAnswered: bigTrace.status === 200 && bigTrace.tokens.length > 0,
    bigStatus: bigTrace.status,
    ...(bigTrace.error ? { bigError: bigTrace.error } : {}),
    /** The server's memory ledger and the device's count (GiB) before the video arrived and once it was answered. */
    memoryAtArrival,
    memoryAfter,
    bigTtftS: r3((encoded - arrive) / 1000),
    perTokenMsBefore: stats(before),
    perTokenMsDuring: stats(during),
    ratioP50,
    ratioP99: r3(quantile(during, 0.99) / quantile(before, 0.99)),
    withinTarget: ratioP50 <= 2,
    /** The encode itself (the engine's clock) and the tokens the questions got meanwhile (0: they stalled). */
    encodeS: enc ? r3((enc.end - enc.start) / 1000) : null,
    tokensDuringEncode: enc
      ? all.reduce((n, t) => n + t.tokens.filter((x) => x >= enc.start && x <= enc.end).length, 0)
      : 0,
    metricsDuringEncode: {
      scrapes: scrapes.length,
      sawEncode: scrapes.filter((x) => x.encodes >= 1).length,
      maxProgress: r3(Math.max(0, ...scrapes.map((x) => x.progress).filter(Number.isFinite))),
    },
  };
}

/** The /metrics memory gauges (ledger and device), in GiB. */
async function memoryGauges(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^longshot_(memory_\w+|device_memory_bytes\{kind="(\w+)"\}) (\S+)$/gm))
    out[m[2] ? `device_${m[2]}` : m[1].replace(/_bytes$/, '')] = r3(Number(m[3]) / 2 ** 30);
  return out;
}

function markdown(r: Record<string, unknown>): string {
  const lines = [
    `# Server load test: ${r.arch} (${r.device}, random weights), ${r.frames}-frame video, ${r.decodeTokens} tokens per answer`,
  ];
  const single = r.single as (Record<string, unknown> & { ttftMs: { p50: number } }) | undefined;
  if (single)
    lines.push(
      '',
      `single stream: ${single.decodeTokS} tok/s (${single.tracedTokS ?? 'n/a'} traced), GPU busy ${single.gpuBusy ?? 'n/a'}, ${single.launchesPerToken ?? 'n/a'} launches/token, TTFT ${single.ttftMs.p50} ms`,
    );
  const concurrent = r.concurrent as Record<string, never>[] | undefined;
  if (concurrent) {
    lines.push(
      '',
      '| concurrent | aggregate tok/s, all decoding (× single) | after the last first token (× single) | TTFT p50 / p99 ms | per-token p50 / p99 ms |',
      '|---|---|---|---|---|',
    );
    for (const c of concurrent)
      lines.push(
        c.skipped
          ? `| ${c.concurrency} | skipped | | | |`
          : `| ${c.concurrency} | ${c.fullBatchTokS} (${c.fullBatchSpeedup}) | ${c.decodeTokS} (${c.speedup}) | ${(c.ttftMs as { p50: number }).p50} / ${(c.ttftMs as { p99: number }).p99} | ${(c.perTokenMs as { p50: number }).p50} / ${(c.perTokenMs as { p99: number }).p99} |`,
      );
  }
  const i = r.interference as (Record<string, never> & { skipped?: string }) | undefined;
  if (i?.skipped) lines.push('', `new video while decoding: skipped (${i.skipped})`);
  else if (i) {
    const ms = (x: { p50: number; p99: number }) => `${x.p50} / ${x.p99}`;
    lines.push(
      '',
      `${i.questions} questions decoding, a ${i.bigFrames}-frame video arrives (chunked prefill: ${i.prefillPieceTokens || 'off'}${i.prefillPieceTokens ? ' tokens a piece' : ''}); answered after ${i.bigTtftS} s:`,
      '',
      '| per-token latency | p50 / p99 ms |',
      '|---|---|',
      `| before the video | ${ms(i.perTokenMsBefore)} |`,
      `| while it is encoded | ${ms(i.perTokenMsDuring)} (max ${(i.perTokenMsDuring as { max: number }).max}) |`,
      `| ratio | ×${i.ratioP50} / ×${i.ratioP99} (target p50 ≤ ×2: ${i.withinTarget ? 'met' : 'missed'}) |`,
      '',
      `encode ${i.encodeS} s, tokens decoded meanwhile: ${i.tokensDuringEncode}; /metrics scraped ${(i.metricsDuringEncode as { scrapes: number }).scrapes} times during it, encode progress up to ${(i.metricsDuringEncode as { maxProgress: number }).maxProgress}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

await main();
