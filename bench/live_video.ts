/**
 * The live-video benchmark (issue 22): Vamba-7B's architecture (random bf16 weights, bench/random-model.ts)
 * watching a 1 fps 640×360 stream on one GPU. At points 10 minutes, 1 hour and 3 hours into the stream it
 * times appending `--measure` seconds of video frame by frame (the facade's resize, Vamba's preprocessing, the
 * vision tower, the Mamba video stream and the cross-attention K/V), the time to first token of a question
 * about everything so far, and the memory held. The stream reaches each point by appending merger-output
 * tokens in big chunks (the video path runs on them for real; only the vision tower is skipped), so the state
 * at a point is that of a real stream of that length. A window (`--window`, default 1 hour) keeps memory
 * bounded past it, as `longshot watch --window 60` would; the growth per hour is measured before it fills.
 *
 *   npm run bench:live                                  # on the GPU machine (about 2 minutes)
 *   node --import tsx bench/live_video.ts --tiny        # the same code on tiny configs on the CPU
 *   options: --points 600,3600,10800 (stream seconds) --window 3600 (s kept; 0: keep all)
 *            --measure 20 (seconds of video timed per point) --out <dir> (writes live_video.json and live_video_table.md)
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/cuda/index.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { generate } from '../src/generate/generate.js';
import { resizeBicubic } from '../src/media/bicubic.js';
import type { Frame } from '../src/media/index.js';
import { boundEdges } from '../src/media/resize.js';
import { parseQwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { vambaConfigJson } from '../src/models/vamba/convert.js';
import { VambaLiveVideo } from '../src/models/vamba/live.js';
import type { VambaVideo } from '../src/models/vamba/video-handle.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import * as ops from '../src/runtime/ops.js';
import { Random } from '../src/util/random.js';
import { randomVamba } from './random-model.js';

const { values: args } = parseArgs({
  options: {
    tiny: { type: 'boolean', default: false },
    points: { type: 'string' },
    window: { type: 'string' },
    measure: { type: 'string' },
    out: { type: 'string' },
  },
});
const TINY = args.tiny;
const POINTS = (args.points ?? (TINY ? '20,60,120' : '600,3600,10800')).split(',').map(Number);
const WINDOW_S = Number(args.window ?? (TINY ? 60 : 3600)) || null;
const MEASURE = Number(args.measure ?? (TINY ? 6 : 20));
const OUT = args.out ?? (TINY ? join(tmpdir(), 'live_video_tiny') : 'docs/benchmarks');
const ROOT = join(import.meta.dirname, '..');
const FPS = 1;
/** The stream's frames; Vamba's live pre-resize (its default edges 256/480) makes them 480×270. */
const SOURCE = TINY ? { width: 64, height: 36 } : { width: 640, height: 360 };
const EDGES = TINY ? ([16, 48] as const) : ([256, 480] as const);
const GiB = 2 ** 30;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function config() {
  const json = TINY
    ? JSON.parse(readFileSync(join(ROOT, 'test/fixtures/vamba/tiny-a/config.json'), 'utf8'))
    : vambaConfigJson(
        JSON.parse(readFileSync(join(ROOT, 'test/fixtures/configs/qwen2vl-7b-instruct/config.json'), 'utf8')),
      );
  return parseQwen2VLConfig(json);
}

/** A few synthetic source frames (smooth gradients with noise), cycled. */
function sourceFrames(n: number): Frame[] {
  const rng = new Random(3);
  const { width, height } = SOURCE;
  return Array.from({ length: n }, (_, index) => {
    const data = new Uint8Array(width * height * 3);
    const [a, b] = [rng.uniform(0, 255), rng.uniform(0, 255)];
    for (let i = 0; i < width * height; i++)
      for (let c = 0; c < 3; c++)
        data[i * 3 + c] = (a + (b * (i % width)) / width + 40 * c + rng.uniform(0, 30)) & 255;
    return { index, timestampSec: index, width, height, data };
  });
}

interface Point {
  streamSec: number;
  heldSec: number;
  videoTokens: number;
  /** Wall time to append one second of video: the measured seconds' mean (a pair is encoded every 2 s). */
  perSecondMs: number;
  /** The slowest frame pair (the vision tower and video path run once per pair). */
  maxPairMs: number;
  ttftMs: number;
  stateGiB: number;
  deviceGiB: number;
}

async function main() {
  const backend: Backend = TINY ? cpuBackend() : await getBackend('cuda');
  const dtype = TINY ? 'f32' : 'bf16';
  const sync = () => backend.synchronize();
  const t0 = performance.now();
  const model = await randomVamba(config(), backend, dtype);
  await sync();
  const setupS = (performance.now() - t0) / 1000;
  const size = boundEdges(EDGES[0], EDGES[1])(SOURCE);
  const live = new VambaLiveVideo(model, {
    sampling: { sampling: 'fps', fps: FPS, frames: 0, minEdge: EDGES[0], maxEdge: EDGES[1] },
    label: 'benchmark stream',
  });
  const frames = sourceFrames(4);
  let streamSec = 0;
  const forget = () => {
    if (WINDOW_S !== null && live.encodedFrames > WINDOW_S * FPS)
      live.dropOldest(live.encodedFrames - WINDOW_S * FPS);
  };
  /** One second of video: one frame, resized as the facade does, appended. */
  const appendSecond = async () => {
    const f = frames[streamSec % frames.length];
    const data = resizeBicubic(f.data, f.width, f.height, size.width, size.height);
    await live.append([{ ...f, ...size, data, timestampSec: streamSec }]);
    streamSec++;
    forget();
  };
  // The first pair fixes the token grid; it and a few more warm plans and the allocator up.
  for (let i = 0; i < 4; i++) await appendSecond();
  await sync();
  const first = live.snapshot() as VambaVideo;
  const [, gh, gw] = first.handle.grid; // the merged grid the processor made of these frames
  first.dispose();
  const perGroup = gh * gw;
  const grid = (groups: number): [number, number, number] => [groups, gh, gw];
  const hidden = model.config.text.hidden_size;
  const chunkGroups = TINY ? 4 : 48;
  const rng = new Random(5);
  const host = new Float32Array(chunkGroups * perGroup * hidden);
  for (let i = 0; i < host.length; i++) host[i] = rng.uniform(-1, 1);
  using tokens = ops.tensor(backend, host, [chunkGroups * perGroup, hidden], dtype);
  const question = Array.from({ length: 24 }, (_, i) => 100 + i);

  const points: Point[] = [];
  let fastForwardS = 0;
  for (const target of POINTS) {
    // Fast-forward: whole groups of merger output in big chunks, through the real video path.
    const f0 = performance.now();
    while (streamSec + 2 <= target) {
      const groups = Math.min(chunkGroups, Math.floor((target - streamSec) / 2));
      using part = tokens.narrow(0, groups * perGroup);
      live.appendTokens(ops.clone(part), grid(groups));
      streamSec += 2 * groups;
      forget();
    }
    await sync();
    fastForwardS += (performance.now() - f0) / 1000;
    // Measured: MEASURE seconds of real frames, one at a time.
    const perSecond: number[] = [];
    for (let s = 0; s < MEASURE; s++) {
      const a = performance.now();
      await appendSecond();
      await sync();
      perSecond.push(performance.now() - a);
    }
    const pairs = perSecond.flatMap((ms, i) => (i % 2 ? [ms + perSecond[i - 1]] : []));
    const snap = live.snapshot() as VambaVideo;
    const q0 = performance.now();
    {
      using session = model.session(snap.handle, { capacity: question.length + 4 });
      for await (const _ of generate(session, question, { maxNewTokens: 1 })) break;
    }
    const ttftMs = performance.now() - q0;
    snap.dispose();
    const mem = backend.memory();
    points.push({
      streamSec,
      heldSec: live.encodedFrames / FPS,
      videoTokens: live.tokens,
      perSecondMs: r3(perSecond.reduce((x, y) => x + y, 0) / perSecond.length),
      maxPairMs: r3(Math.max(...pairs)),
      ttftMs: r3(ttftMs),
      stateGiB: r3(live.bytes / GiB),
      deviceGiB: r3(mem.current / GiB),
    });
    console.log(JSON.stringify(points.at(-1)));
  }
  // Growth per hour of video held: the state's allocation between the first two points (its buffers grow by
  // half again at a time, so this is coarse), and the K/V rows themselves (tokens × bytes per token).
  const [a, b] = points;
  const t = model.config.text;
  const kvBytesPerToken =
    2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * (dtype === 'bf16' ? 2 : 4);
  const perHour = (x: number, y: number) => r3(((y - x) * 3600) / (b.heldSec - a.heldSec));
  const growth = b
    ? {
        stateGiBPerHour: perHour(a.stateGiB, b.stateGiB),
        kvGiBPerHour: perHour(
          (a.videoTokens * kvBytesPerToken) / GiB,
          (b.videoTokens * kvBytesPerToken) / GiB,
        ),
      }
    : null;
  const device = 'device' in backend ? (backend as { device: { name: string } }).device.name : 'cpu';
  const result = {
    benchmark: 'live_video',
    device,
    dtype,
    model: TINY ? 'tiny Vamba (test fixture config)' : 'Vamba-Qwen2-VL-7B architecture, random weights',
    source: `${SOURCE.width}×${SOURCE.height} at ${FPS} fps → ${size.width}×${size.height} (${perGroup} tokens per frame pair)`,
    windowSec: WINDOW_S,
    measureSec: MEASURE,
    setupS: r3(setupS),
    fastForwardS: r3(fastForwardS),
    growth,
    points,
  };
  live[Symbol.dispose]();
  model[Symbol.dispose]();
  const dir = resolve(ROOT, OUT);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'live_video.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(dir, 'live_video_table.md'), markdown(result));
  console.log(`wrote ${join(dir, 'live_video.json')} and live_video_table.md`);
}

const clock = (s: number) =>
  s >= 3600 ? `${(s / 3600).toFixed(s % 3600 ? 2 : 0)} h` : `${Math.round(s / 60)} min`;

function markdown(r: {
  device: string;
  dtype: string;
  model: string;
  source: string;
  windowSec: number | null;
  measureSec: number;
  setupS: number;
  fastForwardS: number;
  growth: { stateGiBPerHour: number; kvGiBPerHour: number } | null;
  points: Point[];
}): string {
  const rows = r.points.map(
    (p) =>
      `| ${clock(p.streamSec)} | ${clock(p.heldSec)} | ${p.videoTokens} | ${p.perSecondMs.toFixed(1)} | ${p.maxPairMs.toFixed(1)} | ${p.ttftMs.toFixed(1)} | ${p.stateGiB.toFixed(2)} | ${p.deviceGiB.toFixed(2)} |`,
  );
  return `# Live video: ${r.model}

${r.device}, ${r.dtype}; stream ${r.source}; window ${r.windowSec === null ? 'none (keep all)' : clock(r.windowSec)};
each point times ${r.measureSec} s of video appended frame by frame. Weights made in ${r.setupS} s; reaching
the points took ${r.fastForwardS} s of fast-forward. Memory growth per hour of video held (first two points):
${r.growth === null ? 'n/a' : `${r.growth.kvGiBPerHour} GiB of K/V rows, ${r.growth.stateGiBPerHour} GiB allocated`}.

| into the stream | held | video tokens held | ms per appended second | slowest frame pair ms | TTFT of a question ms | state GiB | device GiB in use |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}
`;
}

await main();
