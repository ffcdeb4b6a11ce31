/** `longshot info`: what a checkpoint is and how much memory a video of N frames needs, without loading it. */
import '../../backends/cuda/index.js'; // so that --device auto knows whether CUDA is present
import type { Command } from 'commander';
import { defaultModelDir } from '../../facade/default-model.js';
import { inspectModel } from '../../facade/inspect.js';
import type { SamplingOptions } from '../../facade/types.js';
import { resolveModel } from '../../hub/resolve.js';
import { boundEdges } from '../../media/resize.js';
import { resolveDevice } from '../../runtime/device.js';
import { addModelOptions, positiveInt, printJson } from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

export function register(program: Command): void {
  addModelOptions(
    program
      .command('info')
      .description('show a model’s architecture, parameters and the memory a video of N frames needs'),
  )
    .option(
      '--frames <n>',
      "frames to estimate memory for (default: the checkpoint's, else 128)",
      positiveInt('--frames'),
    )
    .option(
      '--width <px>',
      "frame width fed to the model (default: the checkpoint's, else 640)",
      positiveInt('--width'),
    )
    .option(
      '--height <px>',
      "frame height fed to the model (default: the checkpoint's, else 360)",
      positiveInt('--height'),
    )
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Reads only config.json and the safetensors headers (fast, no weights loaded). The memory figure is a
planning estimate: weights + the per-video state + the largest transient buffer (docs/cli.md has the formulas).
Unset sizes come from the checkpoint's longshot_video_defaults (frames; a 640x360 video resized to its
minEdge/maxEdge), else 128 frames of 640x360.

Examples:
  $ longshot info --model TIGER-Lab/Vamba-Qwen2-VL-7B --frames 512
  $ longshot info --model ./checkpoints/qwen2-vl-2b --frames 64 --json`,
    )
    .action(
      async (o: {
        model?: string;
        revision: string;
        device: 'auto' | 'cpu' | 'cuda';
        frames?: number;
        width?: number;
        height?: number;
        json?: boolean;
      }) => {
        const dir = await resolveModel(o.model ?? defaultModelDir(), {
          revision: o.revision,
          reporter: downloadProgress(progressEnabled(o.json)),
        });
        const s = await inspectModel(dir);
        const device = resolveDevice(o.device);
        const geometry = videoGeometry(s.videoDefaults, o);
        const mem = s.checkpoint.estimateMemory({
          ...geometry,
          activationBytes: device === 'cpu' ? 4 : 2,
        });
        const d = s.checkpoint.describe();
        const info = {
          model: o.model ?? dir,
          dir,
          architecture: s.family.name,
          parameters: s.parameters,
          dtype: s.dtype,
          layers: d.layers,
          hidden_size: d.hiddenSize,
          details: Object.fromEntries(d.details),
          frames: geometry.frames,
          frame_size: `${geometry.width}x${geometry.height}`,
          device,
          memory_bytes: mem,
        };
        if (o.json) return printJson(info);
        const lines = [
          ['model', info.model],
          ['architecture', info.architecture],
          ['parameters', `${(s.parameters / 1e9).toFixed(3)} B (${s.parameters})`],
          ['weights', `${gib(s.weightBytes)} (${s.dtype})`],
          ['layers / hidden', `${d.layers} / ${d.hiddenSize}`],
          ...d.details,
          [`video (${geometry.frames} frames ${info.frame_size})`, `${mem.videoTokens} tokens`],
          ['per-video state', gib(mem.videoState)],
          ['largest buffer', gib(mem.working)],
          [`estimated memory (${device})`, gib(mem.total)],
        ];
        const w = Math.max(...lines.map(([k]) => k.length));
        process.stdout.write(lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
      },
    );
}

/** The frames and frame size to estimate for: the options given, else the checkpoint's video defaults. */
function videoGeometry(
  d: SamplingOptions,
  o: { frames?: number; width?: number; height?: number },
): { frames: number; width: number; height: number } {
  const source = { width: 640, height: 360 };
  const fed =
    d.maxEdge || d.minEdge
      ? boundEdges(d.minEdge ?? 0, d.maxEdge ?? Number.MAX_SAFE_INTEGER)(source)
      : source;
  return { frames: o.frames ?? d.frames ?? 128, width: o.width ?? fed.width, height: o.height ?? fed.height };
}
