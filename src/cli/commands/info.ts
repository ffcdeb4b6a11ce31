/** `longshot info`: what a checkpoint is and how much memory a video of N frames needs, without loading it. */
import '../../backends/cuda/index.js'; // so that --device auto knows whether CUDA is present
import type { Command } from 'commander';
import { DEFAULT_MODEL_ID, defaultModelDir } from '../../facade/default-model.js';
import { inspectModel } from '../../facade/inspect.js';
import type { SamplingOptions } from '../../facade/types.js';
import { resolveModel } from '../../hub/resolve.js';
import { toolVersions } from '../../media/ffmpeg.js';
import { boundEdges } from '../../media/resize.js';
import { resolveDevice } from '../../runtime/device.js';
import { addModelOptions, positiveInt, printJson } from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';

/**
 * The resident memory of a CPU process before any tensor: Node.js, the libraries and the worker threads
 * (measured: 126 MB after loading the embedded model, whose weights are 14 MB).
 */
const CPU_RUNTIME_BYTES = 112 * 2 ** 20;

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

export function register(program: Command): void {
  addModelOptions(
    program
      .command('info')
      .description(
        'show a model’s architecture, parameters and the memory a video of N frames (a text model: a context of N tokens) needs',
      ),
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
    .option(
      '--context <tokens>',
      'a text model: context tokens to estimate memory for (default: its max_position_embeddings)',
      positiveInt('--context'),
    )
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Reads only config.json and the safetensors headers (fast, no weights loaded). The memory figure is a
planning estimate: weights + the per-video state + the largest transient buffer (docs/cli.md has the formulas).
Unset sizes come from the checkpoint's longshot_video_defaults (frames; a 640x360 video resized to its
minEdge/maxEdge), else 128 frames of 640x360. For a text model (Nemotron-H) the estimate is for a context of
--context tokens instead. A directory with config.json but no weights is described from the config alone
when the family can count its parameters from it (shown as "from config.json").

Examples:
  $ longshot info --model TIGER-Lab/Vamba-Qwen2-VL-7B --frames 512
  $ longshot info --model ./checkpoints/qwen2-vl-2b --frames 64 --json
  $ longshot info --model nvidia/NVIDIA-Nemotron-Nano-9B-v2 --context 32768`,
    )
    .action(
      async (o: {
        model?: string;
        revision: string;
        device: 'auto' | 'cpu' | 'cuda';
        frames?: number;
        width?: number;
        height?: number;
        context?: number;
        json?: boolean;
      }) => {
        const dir = await resolveModel(o.model ?? defaultModelDir(), {
          revision: o.revision,
          reporter: downloadProgress(progressEnabled(o.json)),
        });
        const s = await inspectModel(dir);
        const device = resolveDevice(o.device);
        const text = !s.family.video;
        const geometry = videoGeometry(s.videoDefaults, o);
        const model = s.checkpoint.estimateMemory({
          ...geometry,
          activationBytes: device === 'cpu' ? 4 : 2,
          contextTokens: o.context,
        });
        // On the CPU the process itself counts too: it is what a user sees in top.
        const runtime = device === 'cpu' ? CPU_RUNTIME_BYTES : 0;
        const mem = { ...model, runtime, total: model.total + runtime };
        const d = s.checkpoint.describe();
        const source = s.fromConfig ? 'config' : 'weights';
        // Which decoder a video would go through (--ffmpeg, LONGSHOT_FFMPEG, the shipped one, else PATH).
        // A missing ffmpeg is worth saying here, not a reason to fail: the model can still be described.
        const tools = text ? undefined : await toolVersions().catch((e: Error) => ({ error: e.message }));
        const info = {
          model: o.model ?? DEFAULT_MODEL_ID,
          dir,
          architecture: s.family.name,
          parameters: s.parameters,
          parameters_from: source,
          dtype: s.dtype,
          layers: d.layers,
          hidden_size: d.hiddenSize,
          details: Object.fromEntries(d.details),
          ...(text
            ? { context_tokens: mem.contextTokens }
            : { frames: geometry.frames, frame_size: `${geometry.width}x${geometry.height}` }),
          device,
          memory_bytes: mem,
          ...(tools ? { tools } : {}),
        };
        if (o.json) return printJson(info);
        const fromConfig = s.fromConfig ? ', from config.json' : '';
        const lines = [
          ['model', info.model],
          ['architecture', info.architecture],
          ['parameters', `${(s.parameters / 1e9).toFixed(3)} B (${s.parameters}${fromConfig})`],
          ['weights', `${gib(s.weightBytes)} (${s.dtype}${fromConfig})`],
          ['layers / hidden', `${d.layers} / ${d.hiddenSize}`],
          ...d.details,
          ...(text
            ? [[`context state (${mem.contextTokens} tokens)`, gib(mem.videoState)]]
            : [
                [
                  `video (${geometry.frames} frames ${geometry.width}x${geometry.height})`,
                  `${mem.videoTokens} tokens`,
                ],
                ['per-video state', gib(mem.videoState)],
              ]),
          ['largest buffer', gib(mem.working)],
          ...(runtime ? [['Node.js and the CPU threads', gib(runtime)]] : []),
          [`estimated memory (${device})`, gib(mem.total)],
          ...(tools && 'error' in tools
            ? [['ffmpeg', tools.error]]
            : Object.entries(tools ?? {}).map(([name, t]) => [name, `${t.version} (${t.path})`])),
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
