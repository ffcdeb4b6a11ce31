/**
 * Decode benchmark: how long it takes to get the frames a model wants out of a long 720p H.264 video,
 * against ffmpeg decoding every frame, with each ffmpeg: the shipped one (`bundled`) and the one on PATH
 * (`system`, e.g. Debian's 5.1). Generates its own video (a one-minute clip of ffmpeg's testsrc2,
 * repeated with stream copy to the requested length, so it is cheap to make but as costly to decode as
 * a real one), caches it in $TMPDIR/longshot-bench/, prints a table per ffmpeg and writes JSON
 * (`<prefix>_<label>.json`).
 *
 *   npx tsx bench/decode.ts [--minutes 60] [--gop 30] [--with bundled,system] [--all] [--json bench/results/decode]
 *
 * `--all` adds the two slow cases (exact mid-GOP 1 fps, which costs about a full decode, and uniform 512).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { findTools, type ToolOptions, toolVersions } from '../src/media/ffmpeg.js';
import { boundEdges } from '../src/media/resize.js';
import type { SamplingPolicy } from '../src/media/sampling.js';
import { type FrameOptions, openVideo } from '../src/media/video.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    gop: { type: 'string', default: '30' },
    with: { type: 'string', default: 'bundled,system' },
    all: { type: 'boolean', default: false },
    json: { type: 'string', default: 'bench/results/decode' },
  },
});
const minutes = Number(values.minutes);
const gop = Number(values.gop);
const FPS = 30;
// The shipped binaries are what findTools picks with no option or variable set.
delete process.env.LONGSHOT_FFMPEG;
delete process.env.LONGSHOT_FFPROBE;
const choices: Record<string, ToolOptions> = {
  bundled: {},
  system: { ffmpegPath: '/usr/bin/ffmpeg', ffprobePath: '/usr/bin/ffprobe' },
};
const labels = values.with!.split(',');
for (const label of labels)
  if (!(label in choices)) throw new Error(`--with: unknown ffmpeg ${label} (bundled or system)`);
const generator = findTools();
const cacheDir = join(tmpdir(), 'longshot-bench');

function run(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')}\n${err}`)),
    );
  });
}

async function makeVideo(): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const path = join(cacheDir, `720p-${minutes}min-gop${gop}.mp4`);
  if (existsSync(path)) return path;
  const t0 = performance.now();
  const clip = join(cacheDir, `720p-clip-gop${gop}.mp4`);
  if (!existsSync(clip)) {
    process.stderr.write('encoding a one-minute 720p H.264 clip…\n');
    await run(generator.ffmpeg, [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=1280x720:rate=${FPS}`,
      '-t',
      '60',
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-g',
      String(gop),
      '-keyint_min',
      String(gop),
      '-sc_threshold',
      '0',
      '-pix_fmt',
      'yuv420p',
      clip,
    ]);
  }
  process.stderr.write(`joining ${minutes} copies…\n`);
  const list = `${path}.txt`;
  await writeFile(list, Array.from({ length: minutes }, () => `file '${clip}'\n`).join(''));
  await run(generator.ffmpeg, [
    '-v',
    'error',
    '-y',
    '-f',
    'concat',
    '-safe',
    '0',
    '-i',
    list,
    '-c',
    'copy',
    path,
  ]);
  await rm(list);
  process.stderr.write(`made the video in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return path;
}

interface Row {
  name: string;
  seconds: number;
  /** CPU seconds of this process and the ffmpeg/ffprobe children together (steadier than wall time on a busy machine). */
  cpuSeconds: number;
  frames: number;
  distinctFrames: number;
  meanAbsOffsetSec?: number;
  speedup?: number;
  cpuSpeedup?: number;
  /** Against decoding every frame to the model's input (640×360 RGB). */
  rgbSpeedup?: number;
  rgbCpuSpeedup?: number;
}

/** CPU seconds used so far by this process and its finished children (Linux: /proc/self/stat). */
function cpuSeconds(): number {
  const own = process.cpuUsage();
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const ticks = Number(fields[13]) + Number(fields[14]); // cutime + cstime
  return (own.user + own.system) / 1e6 + ticks / 100;
}

async function timed(
  fn: () => Promise<Omit<Row, 'seconds' | 'cpuSeconds' | 'name'>>,
  name: string,
): Promise<Row> {
  const t0 = performance.now();
  const c0 = cpuSeconds();
  const r = await fn();
  const row = { name, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSeconds() - c0, ...r };
  process.stderr.write(`  ${name}: ${row.seconds.toFixed(2)} s, ${row.cpuSeconds.toFixed(2)} s CPU\n`);
  return row;
}

/** Opens the video afresh (frame-index scan included in the time) and decodes what `policy` picks. */
async function longshot(path: string, tools: ToolOptions, policy: SamplingPolicy, options: FrameOptions) {
  const video = await openVideo(path, tools);
  try {
    const sample = await video.sample(policy);
    let frames = 0;
    const seen = new Set<number>();
    let offset = 0;
    for await (const batch of video.frames(sample, options))
      for (const f of batch) {
        offset += Math.abs(f.timestampSec - sample.timestampsSec[frames]);
        frames++;
        seen.add(f.index);
      }
    return { frames, distinctFrames: seen.size, meanAbsOffsetSec: offset / Math.max(frames, 1) };
  } finally {
    await video.close();
  }
}

const path = await makeVideo();
const probeVideo = await openVideo(path);
const index = await probeVideo.index();
const info = probeVideo.info;
await probeVideo.close();
const seconds = Math.round(index.count / FPS);
process.stderr.write(
  `video: ${path}, ${info.width}x${info.height}, ${index.count} frames, ${seconds} s, GOP ${gop}\n`,
);

const size = boundEdges(256, 640); // 1280×720 → 640×360, what Vamba's chat preprocessing sees
const onTheSecond: SamplingPolicy = {
  kind: 'first-seconds',
  fps: 1,
  maxFrames: 0,
  minFrames: 0,
  multipleOf: 1,
};
const midSecond: SamplingPolicy = { kind: 'middle', numFrames: seconds };
const cases: Array<[string, SamplingPolicy, FrameOptions, 'slow'?]> = [
  ['1 fps exact, on each second (TimeViper rule)', onTheSecond, {}],
  ['1 fps exact, mid-second (Vamba middle, n = seconds)', midSecond, {}, 'slow'],
  ['1 fps keyframe, mid-second', midSecond, { accuracy: 'keyframe' }],
  ['uniform 512 exact (Vamba eval)', { kind: 'uniform', numFrames: 512 }, {}, 'slow'],
  ['uniform 128 exact (Vamba chat)', { kind: 'middle', numFrames: 128 }, {}],
  ['qwen-vl-utils fps=2 (768 cap) exact', { kind: 'fps' }, {}],
];

for (const label of labels) {
  const tools = findTools(choices[label]);
  const versions = await toolVersions(choices[label]);
  process.stderr.write(`${label}: ffmpeg ${versions.ffmpeg.version} (${tools.ffmpeg})\n`);
  const rows: Row[] = [];
  rows.push(
    await timed(async () => {
      await run(tools.ffmpeg, ['-v', 'error', '-threads', '0', '-i', path, '-map', '0:v', '-f', 'null', '-']);
      return { frames: index.count, distinctFrames: index.count };
    }, 'ffmpeg decodes every frame (baseline, no conversion)'),
  );
  const model = size({ width: info.width, height: info.height });
  rows.push(
    await timed(async () => {
      await run(tools.ffmpeg, [
        '-v',
        'error',
        '-threads',
        '0',
        '-i',
        path,
        '-map',
        '0:v',
        '-vf',
        `scale=${model.width}:${model.height}:flags=bicubic,format=rgb24`,
        '-f',
        'null',
        '-',
      ]);
      return { frames: index.count, distinctFrames: index.count };
    }, `ffmpeg decodes every frame to ${model.width}x${model.height} RGB (full decoding, no pipe)`),
  );
  rows.push(
    await timed(async () => {
      const v = await openVideo(path, choices[label]);
      await v.index();
      await v.close();
      return { frames: 0, distinctFrames: 0 };
    }, 'open + frame-index scan only'),
  );
  for (const [name, policy, options, slow] of cases)
    if (values.all || !slow)
      rows.push(
        await timed(() => longshot(path, choices[label], policy, { ...options, size, batchSize: 16 }), name),
      );
  for (const r of rows.slice(3)) {
    r.speedup = rows[0].seconds / r.seconds;
    r.cpuSpeedup = rows[0].cpuSeconds / r.cpuSeconds;
    r.rgbSpeedup = rows[1].seconds / r.seconds;
    r.rgbCpuSpeedup = rows[1].cpuSeconds / r.cpuSeconds;
  }
  const table = [
    [
      'case',
      'wall (s)',
      'CPU (s)',
      'frames',
      'distinct',
      'mean |Δt| (s)',
      'vs baseline (wall / CPU)',
      'vs full RGB (wall / CPU)',
    ],
    ...rows.map((r) => [
      r.name,
      r.seconds.toFixed(2),
      r.cpuSeconds.toFixed(2),
      String(r.frames),
      String(r.distinctFrames),
      r.meanAbsOffsetSec === undefined ? '' : r.meanAbsOffsetSec.toFixed(3),
      r.speedup === undefined ? '' : `${r.speedup.toFixed(1)}× / ${r.cpuSpeedup!.toFixed(1)}×`,
      r.rgbSpeedup === undefined ? '' : `${r.rgbSpeedup.toFixed(1)}× / ${r.rgbCpuSpeedup!.toFixed(1)}×`,
    ]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  console.log(`\n${label}: ffmpeg ${versions.ffmpeg.version}, ffprobe ${versions.ffprobe.version}`);
  for (const [i, row] of table.entries()) {
    console.log(
      row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '),
    );
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  const result = {
    date: new Date().toISOString(),
    video: {
      width: info.width,
      height: info.height,
      fps: FPS,
      frames: index.count,
      seconds,
      gop,
      codec: info.codec,
    },
    output: '640x360 RGB24 (Vamba pre-resize 256/640)',
    tools: versions,
    rows,
  };
  const out = `${values.json}_${label}.json`;
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${out}`);
}
