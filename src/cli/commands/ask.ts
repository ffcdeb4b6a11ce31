/** `longshot ask <video> "<question>"` and `longshot caption <video>`: one answer about one video or image. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { VideoLM } from '../../facade/video-lm.js';
import { type Clip, decodeReportJson, describeFrameLoss } from '../../media/index.js';
import type { ReductionRequest } from '../../models/reduction.js';
import { noticeEmbeddedModel } from '../first-run.js';
import {
  addClipOption,
  addGenerationOptions,
  addLossOptions,
  addModelOptions,
  addOutputOptions,
  addReduceOption,
  addSamplingOptions,
  generationOf,
  lossPolicyOf,
  type ModelOptions,
  samplingOf,
} from '../options.js';
import { downloadProgress, progressEnabled, videoProgress } from '../progress.js';
import { printReply } from '../reply.js';

/** The instruction `caption` asks (a plain request the instruction-tuned checkpoints answer well). */
const CAPTION_PROMPT = 'Describe this video in detail.';

type AnswerOptions = ModelOptions & { stream?: boolean; json?: boolean } & Record<string, unknown>;

async function answer(video: string, question: string, o: AnswerOptions): Promise<void> {
  // Fail on a missing file before spending seconds loading a model.
  if (!/^[a-z][a-z0-9+.-]*:/i.test(video) && !existsSync(video))
    throw new InputError(`no such file: ${video}`);
  if (!question.trim()) throw new InputError('the question is empty');
  const bars = progressEnabled(o.json);
  using model = await VideoLM.load(o.model, {
    device: o.device,
    revision: o.revision,
    onDownload: downloadProgress(bars),
  });
  using handle = await model.encodeVideo(video, {
    ...samplingOf(o),
    ...lossPolicyOf(o),
    clip: o.clip as Clip | undefined,
    reduce: o.reduce as ReductionRequest | undefined,
    progress: videoProgress(bars),
  });
  // Said before the answer, so nobody takes an answer from a partly decoded video for a whole one.
  const loss = describeFrameLoss(handle.decode);
  if (loss)
    process.stderr.write(`longshot: warning: ${loss}; the answer sees only the rest (--strict refuses)\n`);
  const embedded = o.model === undefined;
  if (embedded) noticeEmbeddedModel();
  await printReply(
    model.ask(handle, question, generationOf(o)),
    o,
    model.info,
    // The embedded model is a demo of the synthetic needle task, not a general video model: say so.
    { ...(embedded && { embedded_demo: true }), video, question },
    {
      frames: decodeReportJson(handle.decode),
    },
  );
}

function withCommon(cmd: Command): Command {
  return addOutputOptions(
    addGenerationOptions(
      addReduceOption(addLossOptions(addClipOption(addSamplingOptions(addModelOptions(cmd))))),
    ),
  );
}

export function register(program: Command): void {
  withCommon(
    program
      .command('ask')
      .description('answer a question about a video or an image')
      .argument('<video>', 'video or image: a path, an http(s) URL or a data: URL')
      .argument('<question>', 'what to ask'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ longshot ask talk.mp4 "What does the speaker hold up at the end?"
  $ longshot ask lecture.mkv "List the topics in order." --model TIGER-Lab/Vamba-Qwen2-VL-7B --device cuda --frames 512 --stream
  $ longshot ask photo.jpg "How many people are there?" --json

A question without a video (a text model such as Nemotron-H): longshot chat "<message>" --model …
Exit codes: 0 ok, 2 bad usage, 3 bad input (file, video), 4 model problem, 5 out of memory.`,
    )
    .action((video: string, question: string, o: AnswerOptions) => answer(video, question, o));

  withCommon(
    program
      .command('caption')
      .description('describe a video in detail')
      .argument('<video>', 'video or image: a path, an http(s) URL or a data: URL'),
  )
    .option('--prompt <text>', 'the instruction to caption with', CAPTION_PROMPT)
    .addHelpText(
      'after',
      `
Examples:
  $ longshot caption clip.mp4 --stream
  $ longshot caption clip.mp4 --frames 64 --json`,
    )
    .action((video: string, o: AnswerOptions & { prompt: string }) => answer(video, o.prompt, o));
}
