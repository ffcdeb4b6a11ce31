/** `longshot frames <video> --frames N --out DIR`: save the sampled frames as PNG, to see what the model sees. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { InputError } from '../../errors.js';
import { encodePng } from '../../media/png.js';
import { boundEdges, type TargetSize } from '../../media/resize.js';
import type { SamplingPolicy } from '../../media/sampling.js';
import { openVideo } from '../../media/video.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function size(value: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected WIDTHxHEIGHT, e.g. 476x280');
  return { width: Number(m[1]), height: Number(m[2]) };
}

interface Options {
  frames?: number;
  out: string;
  policy: 'middle' | 'uniform' | 'fps' | 'first-seconds' | 'all';
  fps?: number;
  size?: { width: number; height: number };
  longestEdge?: number;
  shortestEdge?: number;
  accuracy: 'exact' | 'keyframe';
}

function policyOf(o: Options): SamplingPolicy {
  switch (o.policy) {
    case 'middle':
    case 'uniform':
      if (o.frames === undefined) throw new InputError(`--policy ${o.policy} needs --frames N`);
      return { kind: o.policy, numFrames: o.frames };
    case 'fps':
      return o.frames !== undefined ? { kind: 'nframes', numFrames: o.frames } : { kind: 'fps', fps: o.fps };
    case 'first-seconds':
      return { kind: 'first-seconds', fps: o.fps, maxFrames: o.frames };
    case 'all':
      return { kind: 'all' };
  }
}

export function register(program: Command): void {
  program
    .command('frames')
    .description('write the frames a sampling policy picks as PNG files (what the model would see)')
    .argument('<video>', 'a path, an http(s) URL or a data: URL')
    .requiredOption('--out <dir>', 'folder for the PNG files (created if missing)')
    .option(
      '--frames <n>',
      'how many frames (middle/uniform: required; fps: an explicit count; first-seconds: the cap)',
      positiveInt,
    )
    .addOption(
      new Option('--policy <name>', 'sampling rule')
        .choices(['middle', 'uniform', 'fps', 'first-seconds', 'all'])
        .default('middle'),
    )
    .option(
      '--fps <rate>',
      'frames per second for --policy fps (default 2) or first-seconds (default 1)',
      positiveNumber,
    )
    .option('--size <WxH>', 'resize every frame to exactly this size', size)
    .option('--longest-edge <px>', 'pre-resize: longest side at most this (e.g. 640)', positiveInt)
    .option('--shortest-edge <px>', 'pre-resize: each side at least this (e.g. 256)', positiveInt)
    .addOption(
      new Option('--accuracy <mode>', 'exact frames, or the nearest keyframes (much faster on long videos)')
        .choices(['exact', 'keyframe'])
        .default('exact'),
    )
    .action(async (input: string, o: Options) => {
      const policy = policyOf(o);
      let target: TargetSize | undefined = o.size;
      if (o.longestEdge !== undefined || o.shortestEdge !== undefined) {
        if (o.size) throw new InputError('give either --size or --longest-edge/--shortest-edge, not both');
        target = boundEdges(o.shortestEdge ?? 1, o.longestEdge ?? Number.MAX_SAFE_INTEGER);
      }
      await mkdir(o.out, { recursive: true }).catch((e: Error) => {
        throw new InputError(`cannot create ${o.out}: ${e.message}`);
      });
      const video = await openVideo(input);
      try {
        const stream = video.frames(policy, { size: target, accuracy: o.accuracy });
        let n = 0;
        for await (const batch of stream)
          for (const f of batch) {
            const name = `frame-${String(n++).padStart(5, '0')}.png`;
            await writeFile(join(o.out, name), encodePng(f.width, f.height, f.data));
            process.stdout.write(
              `${name}  frame ${f.index}  ${f.timestampSec.toFixed(3)} s  ${f.width}x${f.height}\n`,
            );
          }
        for (const s of stream.skipped)
          process.stderr.write(`skipped frame ${s.index} at ${s.timestampSec.toFixed(3)} s: ${s.reason}\n`);
        process.stdout.write(`wrote ${n} frames to ${o.out}\n`);
      } finally {
        await video.close();
      }
    });
}
