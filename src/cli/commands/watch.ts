/**
 * `longshot watch <source>`: watches a live source (a growing file, a stream URL, device:<name>, or - for
 * stdin) and answers questions typed at the prompt about what has been seen so far. Frames are appended in
 * the background as they arrive; each question takes a snapshot of the video at that moment.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { UsageError } from '../../errors.js';
import type { LiveVideo } from '../../facade/live.js';
import { VideoLM } from '../../facade/video-lm.js';
import { checkSource, liveFrames } from '../../media/live-source.js';
import {
  addGenerationOptions,
  addModelOptions,
  generationOf,
  type ModelOptions,
  positiveInt,
} from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';

type WatchOptions = ModelOptions & {
  fps: number;
  window?: number;
  maxEdge?: number;
  minEdge?: number;
  format?: string;
  realtime?: boolean;
  idleTimeout: number;
} & Record<string, unknown>;

const positive = (name: string) => (raw: string) => {
  const v = Number(raw);
  if (raw.trim() === '' || !(v > 0) || !Number.isFinite(v))
    throw new InvalidArgumentError(`${name} must be a number > 0, got '${raw}'`);
  return v;
};

/** One line of what is held, for the prompt and `:status`. */
function statusLine(live: LiveVideo): string {
  const s = live.status();
  const mib = (s.bytes / 2 ** 20).toFixed(1);
  const held = s.windowSec === null ? '' : `, ${s.framesHeld} held (last ${s.windowSec / 60} min)`;
  return `${s.framesSeen} frames seen over ${s.durationSec.toFixed(1)} s${held}, ${s.tokens} video tokens, ${mib} MiB`;
}

async function watch(source: string, o: WatchOptions): Promise<void> {
  const kind = await checkSource(source); // before the model loads
  // Questions come from the terminal; with the video on stdin, from /dev/tty.
  const questions: Readable = kind === 'pipe' ? createReadStream('/dev/tty') : process.stdin;
  if (kind === 'pipe')
    await new Promise<void>((resolve, reject) => {
      questions.once('open', () => resolve());
      questions.once('error', () =>
        reject(
          new UsageError(
            'with the video on stdin, questions are read from a terminal (/dev/tty), and there is none',
          ),
        ),
      );
    });
  using model = await VideoLM.load(o.model, {
    device: o.device,
    revision: o.revision,
    onDownload: downloadProgress(progressEnabled()),
  });
  const live = model.live({
    fps: o.fps,
    windowSec: o.window === undefined ? undefined : o.window * 60,
    maxEdge: o.maxEdge,
    minEdge: o.minEdge,
    label: source,
  });
  const tty = Boolean((questions as { isTTY?: boolean }).isTTY) || kind === 'pipe';
  process.stderr.write(
    `longshot: watching ${source} with ${model.info.id} at ${o.fps} fps; type a question (:status, :quit)\n`,
  );
  const rl = createInterface({ input: questions, output: tty ? process.stderr : undefined, terminal: tty });
  const stop = new AbortController();
  let failure: unknown = null;
  const pump = (async () => {
    for await (const batch of liveFrames(source, {
      fps: o.fps,
      format: o.format,
      realtime: o.realtime,
      idleTimeoutSec: o.idleTimeout,
      signal: stop.signal,
    }))
      await live.append(batch, { signal: stop.signal });
    process.stderr.write(`longshot: ${source} ended (${statusLine(live)}); ask on, or Ctrl-D to quit\n`);
  })().catch((e) => {
    if (stop.signal.aborted) return;
    failure = e;
    rl.close(); // the prompt ends with the source's error
  });
  rl.setPrompt('? ');
  if (tty) rl.prompt();
  try {
    for await (const line of rl) {
      if (failure) throw failure;
      const q = line.trim();
      if (q === ':quit') break;
      if (q === ':status') process.stdout.write(`${statusLine(live)}\n`);
      else if (q) await answer(model, live, q, generationOf(o), () => failure);
      if (tty) rl.prompt();
    }
    if (failure) throw failure;
  } finally {
    rl.close();
    stop.abort();
    await pump;
    await live.close();
  }
}

/** Waits for the first encoded frames, then answers about the video as it is now. */
async function answer(
  model: VideoLM,
  live: LiveVideo,
  question: string,
  generation: ReturnType<typeof generationOf>,
  failed: () => unknown,
): Promise<void> {
  while (!live.status().framesEncoded) {
    if (failed()) throw failed();
    await new Promise((r) => setTimeout(r, 100));
  }
  using video = live.snapshot();
  const last = video.timestampsSec[video.timestampsSec.length - 1];
  process.stdout.write(`[${last.toFixed(1)} s, ${video.timestampsSec.length} frames] `);
  for await (const piece of model.ask(video, question, generation)) process.stdout.write(piece);
  process.stdout.write('\n');
}

export function register(program: Command): void {
  addGenerationOptions(
    addModelOptions(
      program
        .command('watch')
        .description('watch a live video and answer questions about what has been seen so far')
        .argument(
          '<source>',
          'a growing file, a stream URL (http(s), rtsp, rtmp, srt, udp), device:<name>, or - (stdin)',
        ),
    ),
  )
    .option('--fps <x>', 'frames per second taken from the source', positive('--fps'), 1)
    .option(
      '--window <minutes>',
      'keep only the last minutes of video (default: everything)',
      positive('--window'),
    )
    .option('--max-edge <px>', 'longest frame side before the model’s resize', positiveInt('--max-edge'))
    .option('--min-edge <px>', 'shortest frame side before the model’s resize', positiveInt('--min-edge'))
    .option('--format <fmt>', 'ffmpeg input format (-f), e.g. mpegts for a pipe, v4l2 for a device')
    .option('--realtime', 'read a finished file at its own pace, as if it were live')
    .option(
      '--idle-timeout <s>',
      'the source has ended when no new data came for this long',
      positive('--idle-timeout'),
      10,
    )
    .addHelpText(
      'after',
      `
Type a question and press Enter: the answer is about the frames seen up to then, prefixed by how far the
video has got. ':status' shows frames seen and held, video tokens and memory; ':quit' or Ctrl-D ends.

Examples:
  $ longshot watch rtsp://camera.local/stream --model TIGER-Lab/Vamba-Qwen2-VL-7B --device cuda --window 60
  $ longshot watch recording.ts --fps 2                       # a file still being written
  $ ffmpeg -i talk.mp4 -f mpegts - | longshot watch - --format mpegts --realtime
  $ longshot watch device:/dev/video0 --fps 0.5

Exit codes: 0 ok, 2 bad usage, 3 bad input (a source ffmpeg cannot read), 4 model problem, 5 out of memory.`,
    )
    .action((source: string, o: WatchOptions) => watch(source, o));
}
