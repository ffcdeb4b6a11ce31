/** `longshot serve`: an OpenAI-compatible Chat Completions server for one model. */
import { type Command, InvalidArgumentError } from 'commander';
import { VideoLM } from '../../facade/video-lm.js';
import { defaultMemoryBudget } from '../../models/fit.js';
import type { ReductionRequest } from '../../models/reduction.js';
import { getBackend } from '../../runtime/device.js';
import { createServer } from '../../serve/app.js';
import { checkListen, listenError } from '../../serve/listen.js';
import { checkAllowedRoot } from '../../serve/media.js';
import { addModelOptions, addReduceOption, positiveInt } from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';

interface ServeCliOptions {
  model?: string;
  revision: string;
  device: 'auto' | 'cpu' | 'cuda';
  host: string;
  port: number;
  name?: string;
  allowedRoot?: string;
  allowRemoteMedia?: boolean;
  concurrency: number;
  memoryBudget?: number;
  maxQueue: number;
  timeout: number;
  cacheVideos: number;
  maxLiveSessions: number;
  liveTtl: number;
  apiKey?: string;
  ui: boolean;
  maxUploadMb: number;
  prefillPiece: number;
  reduce?: ReductionRequest;
}

export function register(program: Command): void {
  addReduceOption(
    addModelOptions(
      program.command('serve').description('serve the model over an OpenAI-compatible HTTP API'),
    ),
    'the token reduction for requests that name none',
  )
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', port, 8000)
    .option(
      '--name <id>',
      'model id clients use (default: the --model value; the embedded model: needle-vamba-tiny)',
    )
    .option('--allowed-root <dir>', 'directory whose files requests may name by path (default: none)')
    .option('--allow-remote-media', 'let requests name http(s) video/image URLs')
    .option(
      '--concurrency <n>',
      'requests run on the model at once, decoding together in one batch',
      positiveInt('--concurrency'),
      8,
    )
    .option(
      '--memory-budget <GiB>',
      "device memory the server may use in all, weights included: requests are admitted while their decode caches and new videos' encodes fit (default: 92% of the device's memory)",
      gibibytes,
    )
    .option(
      '--max-queue <n>',
      'requests that may wait; more get HTTP 429',
      (v) => (v === '0' ? 0 : positiveInt('--max-queue')(v)),
      16,
    )
    .option(
      '--prefill-piece <tokens>',
      "chunked prefill: encode a new video in pieces of about this many video tokens, the running requests' decode steps between them (0: at once)",
      (v) => (v === '0' ? 0 : positiveInt('--prefill-piece')(v)),
      1024,
    )
    .option('--timeout <s>', 'per-request limit in seconds', positiveInt('--timeout'), 600)
    .option(
      '--cache-videos <n>',
      'encoded videos kept for follow-up questions',
      (v) => (v === '0' ? 0 : positiveInt('--cache-videos')(v)),
      4,
    )
    .option(
      '--max-live-sessions <n>',
      'live video sessions at once; more get HTTP 429',
      (v) => (v === '0' ? 0 : positiveInt('--max-live-sessions')(v)),
      2,
    )
    .option(
      '--live-ttl <s>',
      'close a live session nobody has used for this long',
      positiveInt('--live-ttl'),
      600,
    )
    .option('--api-key <key>', 'require this bearer token (default: LONGSHOT_API_KEY, else none)')
    .option('--no-ui', 'do not serve the web UI at /')
    .option(
      '--max-upload-mb <n>',
      'largest video the web UI accepts as an upload, MiB',
      positiveInt('--max-upload-mb'),
      1024,
    )
    .addHelpText(
      'after',
      `
Endpoints: POST /v1/chat/completions (streaming with "stream": true), GET /v1/models, GET /health,
GET /metrics, /v1/live/sessions (live video: watch a stream, ask about it with a video_url "live://<id>";
docs/server.md), and the web UI at / (ask about a video in the browser; --no-ui turns it off).
Messages may mix text with one "video_url" or "image_url" part: a path under --allowed-root, a data: URL,
or (with --allow-remote-media) an http(s) URL. Extra request fields: frames, fps, sampling, max_edge, min_edge,
relevance (true: also return each frame's share of the answer's attention), reduce (a token reduction).

Examples:
  $ longshot serve --model TIGER-Lab/Vamba-Qwen2-VL-7B --device cuda --allowed-root ~/videos
  $ curl localhost:8000/v1/chat/completions -H 'content-type: application/json' -d '{"model": "TIGER-Lab/Vamba-Qwen2-VL-7B",
      "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "talk.mp4"}},
                                                {"type": "text", "text": "What is this talk about?"}]}]}'`,
    )
    .action(async (o: ServeCliOptions) => {
      // What the user can fix fails before the model loads.
      if (o.allowedRoot !== undefined) checkAllowedRoot(o.allowedRoot);
      await checkListen(o.host, o.port);
      const model = await VideoLM.load(o.model, {
        device: o.device,
        revision: o.revision,
        onDownload: downloadProgress(progressEnabled()),
      });
      const server = createServer(model, {
        // The embedded model is served under its directory's name, never a path of this machine.
        modelId: o.name ?? model.info.id,
        concurrency: o.concurrency,
        memoryBudgetBytes: o.memoryBudget ?? defaultMemoryBudget(await getBackend(model.info.device)),
        maxQueue: o.maxQueue,
        timeoutMs: o.timeout * 1000,
        cacheEntries: o.cacheVideos,
        reduce: o.reduce,
        live: { maxSessions: o.maxLiveSessions, idleTtlMs: o.liveTtl * 1000 },
        media: { allowedRoot: o.allowedRoot, allowRemote: Boolean(o.allowRemoteMedia) },
        apiKey: o.apiKey ?? process.env.LONGSHOT_API_KEY,
        ui: o.ui,
        maxUploadBytes: o.maxUploadMb * 2 ** 20,
        prefillPieceTokens: o.prefillPiece,
      });
      const address = await server.app.listen({ host: o.host, port: o.port }).catch((e) => {
        throw listenError(e, o.host, o.port);
      });
      process.stderr.write(
        `longshot: serving ${model.info.id} (${model.info.architecture}) at ${address}/v1${o.ui ? `, web UI at ${address}/` : ''}\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      model.dispose();
    });
}

/** A positive number of GiB, in whole bytes. */
function gibibytes(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`--memory-budget must be a positive number of GiB, got '${v}'`);
  return Math.max(1, Math.floor(n * 2 ** 30));
}

/** A TCP port: 0 (any free one) to 65535. */
function port(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`--port must be an integer from 0 to 65535, got '${v}'`);
  return n;
}
