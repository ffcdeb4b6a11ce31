/** `longshot chat "<message>"`: one text-only answer (a text model, or a video model without a video). */
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import type { ChatTurn } from '../../facade/types.js';
import { VideoLM } from '../../facade/video-lm.js';
import {
  addGenerationOptions,
  addModelOptions,
  addOutputOptions,
  generationOf,
  type ModelOptions,
  positiveInt,
} from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';
import { printReply } from '../reply.js';

type ChatOptions = ModelOptions & { system?: string; stream?: boolean; json?: boolean } & Record<
    string,
    unknown
  >;

async function chat(message: string, o: ChatOptions): Promise<void> {
  if (!message.trim()) throw new InputError('the message is empty');
  using model = await VideoLM.load(o.model, {
    device: o.device,
    revision: o.revision,
    onDownload: downloadProgress(progressEnabled(o.json)),
  });
  const turns: ChatTurn[] = [
    ...(o.system !== undefined ? [{ role: 'system' as const, content: o.system }] : []),
    { role: 'user', content: message },
  ];
  await printReply(model.chat(turns, generationOf(o)), o, model.info, {
    ...(o.system !== undefined ? { system: o.system } : {}),
    message,
  });
}

export function register(program: Command): void {
  addOutputOptions(
    addGenerationOptions(
      addModelOptions(
        program
          .command('chat')
          .description('answer a text message, without a video (text models such as Nemotron-H)')
          .argument('<message>', 'what to say'),
      ),
    ),
  )
    .option('--system <text>', 'a system prompt (Nemotron-H: "/think" or "/no_think" switches its reasoning)')
    .option(
      '--reasoning-budget <n>',
      'think at most n tokens, then answer (Nemotron-H; fewer than --max-new-tokens)',
      positiveInt('--reasoning-budget'),
    )
    .addHelpText(
      'after',
      `
Examples:
  $ longshot chat "Explain the Mamba-2 state in two sentences." --model nvidia/NVIDIA-Nemotron-Nano-9B-v2 --stream
  $ longshot chat "What is 17 × 23?" --system "/no_think" --model ./nemotron-nano-9b-v2 --json
  $ longshot chat "Plan a 3-day trip to Kyoto." --system "/think" --reasoning-budget 256 --model ./nemotron-nano-9b-v2

A model that answers only about a video (Vamba) refuses with exit 2; ask it with 'longshot ask <video> …'.
Exit codes: 0 ok, 2 bad usage, 3 bad input, 4 model problem, 5 out of memory.`,
    )
    .action((message: string, o: ChatOptions) => chat(message, o));
}
