/** `longshot info`: what a checkpoint is and how much memory a video of N frames needs, without loading it. */
import type { Command } from 'commander';
import { defaultModelDir } from '../../facade/default-model.js';
import { estimateMemory, inspectModel } from '../../facade/inspect.js';
import { resolveModel } from '../../hub/resolve.js';
import { addModelOptions, positiveInt, printJson } from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

export function register(program: Command): void {
  addModelOptions(
    program
      .command('info')
      .description('show a model’s architecture, parameters and the memory a video of N frames needs'),
  )
    .option('--frames <n>', 'frames to estimate memory for', positiveInt('--frames'), 128)
    .option('--width <px>', 'frame width fed to the model', positiveInt('--width'), 640)
    .option('--height <px>', 'frame height fed to the model', positiveInt('--height'), 360)
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Reads only config.json and the safetensors headers (fast, no weights loaded). The memory figure is a
planning estimate: weights + the per-video state + the largest transient buffer (docs/cli.md has the formulas).

Examples:
  $ longshot info --model TIGER-Lab/Vamba-Qwen2-VL-7B --frames 512
  $ longshot info --model ./checkpoints/qwen2-vl-2b --frames 64 --json`,
    )
    .action(
      async (o: {
        model?: string;
        revision: string;
        device: 'cpu' | 'cuda';
        frames: number;
        width: number;
        height: number;
        json?: boolean;
      }) => {
        const dir = await resolveModel(o.model ?? defaultModelDir(), {
          revision: o.revision,
          reporter: downloadProgress(progressEnabled(o.json)),
        });
        const s = await inspectModel(dir);
        const mem = estimateMemory(s, {
          frames: o.frames,
          width: o.width,
          height: o.height,
          activationBytes: o.device === 'cpu' ? 4 : 2,
        });
        const t = s.config.text;
        const info = {
          model: o.model ?? dir,
          dir,
          architecture: s.architecture,
          parameters: s.parameters,
          dtype: s.dtype,
          layers: t.num_hidden_layers,
          hidden_size: t.hidden_size,
          vision_depth: s.config.vision.depth,
          frames: o.frames,
          frame_size: `${o.width}x${o.height}`,
          device: o.device,
          memory_bytes: mem,
        };
        if (o.json) return printJson(info);
        const lines = [
          ['model', info.model],
          ['architecture', s.architecture],
          ['parameters', `${(s.parameters / 1e9).toFixed(3)} B (${s.parameters})`],
          ['weights', `${gib(s.weightBytes)} (${s.dtype})`],
          ['layers / hidden', `${t.num_hidden_layers} / ${t.hidden_size}`],
          ['vision encoder', `${s.config.vision.depth} blocks, ${s.config.vision.embed_dim} wide`],
          [`video (${o.frames} frames ${info.frame_size})`, `${mem.videoTokens} tokens`],
          ['per-video state', gib(mem.videoState)],
          ['largest buffer', gib(mem.working)],
          [`estimated memory (${o.device})`, gib(mem.total)],
        ];
        const w = Math.max(...lines.map(([k]) => k.length));
        process.stdout.write(lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
      },
    );
}
