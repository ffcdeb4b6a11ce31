/**
 * The OpenAI-compatible HTTP server (fastify) over a ChatEngine:
 *   POST /v1/chat/completions   text + one video_url / image_url part; streaming (SSE) or not
 *   GET  /v1/models, /v1/models/:id, /health
 *   GET  /  and /ui/…             the web UI (serve/ui/)
 * A request is validated, its media resolved and hashed, admitted by the queue against the server's device
 * memory (ledger.ts: its decode cache and its question over its video, plus its video's encode when that is
 * not cached; 429 when the line is full, 413 when it could never fit), the encoded video leased from the LRU (so asking again about the same
 * video skips decoding and encoding), and the answer generated under a per-request timeout that also fires
 * when the client goes away.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { UsageError } from '../errors.js';
import type { ChatEngine } from '../facade/engine.js';
import type { AskResult, ChatTurn, SamplingOptions, VideoProgress } from '../facade/types.js';
import { decodeTurn } from '../generate/batch.js';
import { type Clip, checkFrameLoss, decodeReportJson, type LossPolicy } from '../media/index.js';
import type { QuestionBudget, QuestionCost } from '../models/family.js';
import type { ReductionRequest } from '../models/reduction.js';
import { getBackend } from '../runtime/device.js';
import { ApiError, badRequest, toApiError } from './errors.js';
import { MemoryLedger } from './ledger.js';
import { registerLiveSessions } from './live/routes.js';
import type { LiveSessionOptions, LiveSessions } from './live/sessions.js';
import { checkAllowedRoot, type MediaPolicy, resolveMedia } from './media.js';
import { type Outcome, ServerMetrics } from './metrics.js';
import { type Admission, RequestQueue } from './queue.js';
import { type ChatRequest, type MediaRef, parseChatRequest } from './request.js';
import { uiRoutes } from './ui/routes.js';
import { UploadStore } from './ui/uploads.js';
import { type Lease, VideoCache } from './video-cache.js';

export interface ServeOptions {
  /** The id `/v1/models` lists and requests must name (default: the engine's model id). */
  modelId?: string;
  /** Requests running on the model at once, their decode steps batched together (default 8). */
  concurrency?: number;
  /**
   * Device memory the server may use in all, the weights included (ledger.ts): a request is admitted when its
   * decode cache (`ModelInfo.decodeCache`), its question over its video (`VideoHandle.questionBytes`, or the
   * plan's) and, for a video not cached, its encode (`ChatEngine.planEncode`) fit beside the weights, the
   * encoded videos and the running requests; one that does not waits, one that never would gets 413 (default:
   * no limit; `longshot serve` defaults to 92% of the device's memory).
   */
  memoryBudgetBytes?: number;
  /** The weights' bytes in the budget (default: what the device holds when the server is created). */
  weightsBytes?: number;
  /** Requests waiting beyond those (default 16); more get 429. */
  maxQueue?: number;
  /** Per-request limit, queueing included (default 10 min). */
  timeoutMs?: number;
  /** Encoded videos kept for follow-up questions (default 4) and their memory budget. */
  cacheEntries?: number;
  cacheBytes?: number;
  media?: Partial<MediaPolicy>;
  /** The token reduction for requests that name none (`serve --reduce`). */
  reduce?: ReductionRequest;
  /** When set, /v1 and the UI's data routes require `Authorization: Bearer <apiKey>` (/ui/media: `?key=`). */
  apiKey?: string;
  /** Largest request body (default 64 MiB, for data: URLs). */
  bodyLimit?: number;
  /** Serve the web UI at / (default true). */
  ui?: boolean;
  /** Largest video the web UI accepts as an upload (default 1 GiB). */
  maxUploadBytes?: number;
  /** Live video sessions (serve/live/): how many at once, when idle ones expire. */
  live?: LiveSessionOptions;
  /**
   * Chunked prefill: a new video is encoded in pieces (batches of frames, and the model's video prefill in
   * pieces of about this many tokens where the family can: Vamba, Qwen2-VL), one batched decode step of the
   * running requests between two pieces, so their tokens keep flowing while it is encoded (default 1024;
   * 0: encode at once).
   */
  prefillPieceTokens?: number;
}

export interface LongshotServer {
  app: FastifyInstance;
  queue: RequestQueue;
  cache: VideoCache;
  live: LiveSessions;
  close(): Promise<void>;
}

export function createServer(engine: ChatEngine, opts: ServeOptions = {}): LongshotServer {
  const modelId = opts.modelId ?? engine.info.id;
  const metrics = new ServerMetrics();
  const cache = new VideoCache(opts.cacheEntries ?? 4, opts.cacheBytes);
  const ledger = new MemoryLedger({
    budgetBytes: opts.memoryBudgetBytes ?? Number.POSITIVE_INFINITY,
    videoBytes: () => cache.heldBytes,
    evictableBytes: () => cache.evictableBytes,
    evict: (bytes) => cache.evictUnused(bytes),
  });
  const queue = new RequestQueue(opts.concurrency ?? 8, opts.maxQueue ?? 16, ledger);
  cache.onFree = () => queue.poke();
  // The device's live bytes: the weights now, and a floor under the ledger's sum from then on.
  const measured = getBackend(engine.info.device).then(
    (b) => ledger.measure(() => b.memory().current, opts.weightsBytes),
    () => {},
  );
  const uploads = new UploadStore(opts.maxUploadBytes ?? 2 ** 30);
  const policy: MediaPolicy = { allowRemote: false, maxBytes: 4 * 2 ** 30, uploads, ...opts.media };
  if (policy.allowedRoot !== undefined) checkAllowedRoot(policy.allowedRoot);
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const pieceTokens = opts.prefillPieceTokens ?? DEFAULT_PIECE_TOKENS;
  if (!(Number.isInteger(pieceTokens) && pieceTokens >= 0))
    throw new UsageError(
      `prefillPieceTokens must be a whole number of tokens ≥ 0 (got ${pieceTokens}); 0 encodes a video at once`,
    );
  /** Pieces of an encode for a request: after each pause, a request gone away stops it. */
  const piecesFor = (signal: AbortSignal) =>
    pieceTokens
      ? {
          tokens: pieceTokens,
          pause: () => decodeTurn().then(() => signal.throwIfAborted()),
        }
      : undefined;
  const created = Math.floor(Date.now() / 1000);
  const app = Fastify({ bodyLimit: opts.bodyLimit ?? 64 * 2 ** 20 });

  app.setErrorHandler((error, _req, reply) => {
    // fastify's own 4xx (unparsable JSON, body too large) keep their status; everything else is mapped.
    const status = (error as { statusCode?: number }).statusCode;
    const fastify4xx = !(error instanceof ApiError) && status !== undefined && status >= 400 && status < 500;
    sendError(reply, fastify4xx ? new ApiError(status, (error as Error).message) : toApiError(error));
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      new ApiError(404, `no route ${req.method} ${req.url}`, 'invalid_request_error', null, 'not_found'),
    ),
  );
  if (opts.apiKey)
    app.addHook('onRequest', async (req) => {
      // The UI's player cannot send headers: its media requests may carry the key as ?key=.
      const ok = req.url.startsWith('/ui/media')
        ? new URL(req.url, 'http://localhost').searchParams.get('key') === opts.apiKey
        : req.headers.authorization === `Bearer ${opts.apiKey}`;
      if (/^\/(v1|ui\/api|ui\/media)[/?]/.test(req.url) && !ok)
        throw new ApiError(
          401,
          'missing or wrong API key (Authorization: Bearer …)',
          'invalid_request_error',
          null,
          'invalid_api_key',
        );
    });

  const live = registerLiveSessions(app, engine, policy, opts.live);

  const modelCard = { id: modelId, object: 'model', created, owned_by: 'longshot' };
  app.get('/health', async () => ({
    status: 'ok',
    model: modelId,
    architecture: engine.info.architecture,
    queue: queue.stats,
    memory: ledger.snapshot,
    video_cache: { entries: cache.size, bytes: cache.bytes },
  }));
  app.get('/metrics', async (_req, reply) => {
    const q = queue.stats;
    const backend = await getBackend(engine.info.device).catch(() => null);
    void reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    return metrics.render({
      running: q.running,
      queued: q.queued,
      ledger: ledger.snapshot,
      videoCache: { entries: cache.size, bytes: cache.bytes },
      memory: backend?.memory() ?? null,
      encodes: metrics.encodes,
    });
  });
  app.get('/v1/models', async () => ({ object: 'list', data: [modelCard] }));
  app.get<{ Params: { '*': string } }>('/v1/models/*', async (req) => {
    if (req.params['*'] !== modelId)
      throw new ApiError(
        404,
        `model '${req.params['*']}' is not served here (this server serves '${modelId}')`,
        'invalid_request_error',
        'model',
        'model_not_found',
      );
    return modelCard;
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const chat = parseChatRequest(req.body);
    if (chat.model !== modelId)
      throw new ApiError(
        404,
        `model '${chat.model}' is not served here (this server serves '${modelId}')`,
        'invalid_request_error',
        'model',
        'model_not_found',
      );
    // Before anything is queued or streamed, so that it is a 400 (which clients do not retry).
    if (!chat.media && engine.info.videoRequired)
      throw badRequest(
        `this model (${engine.info.architecture}) answers questions about a video or an image: add a video_url or image_url part to a user message`,
        'messages',
      );
    if (chat.media && engine.info.textOnly)
      throw badRequest(
        `this model (${engine.info.architecture}) is a text model: send messages without a video_url or image_url part`,
        chat.media.param,
      );
    // Before the timer: a prompt the model's template refuses is an error like the checks above.
    const { decode, question } = costOf(chat);
    const ctrl = new AbortController();
    const timer = setTimeout(
      () =>
        ctrl.abort(
          new ApiError(504, `the request took longer than ${timeoutMs} ms`, 'timeout', null, 'timeout'),
        ),
      timeoutMs,
    );
    const onClose = () => {
      if (!reply.raw.writableFinished) ctrl.abort(new ApiError(499, 'the client closed the connection'));
    };
    reply.raw.on('close', onClose);
    let admission: Admission | undefined;
    let lease: Lease | undefined;
    const arrived = performance.now();
    let outcome: Outcome = 'error';
    let completionTokens = 0;
    const admit = (video?: VideoCost) =>
      queue
        .acquire(ctrl.signal, {
          decode,
          question: video?.question?.(question) ?? 0,
          encode: video?.encode ?? 0,
        })
        .catch((e) => {
          if (e instanceof ApiError && e.status !== 499 && e.status !== 504) outcome = 'rejected';
          throw e;
        });
    try {
      await measured;
      try {
        queue.assertRoom();
      } catch (e) {
        outcome = 'rejected';
        throw e;
      }
      const snapshot = chat.media && live.lease(chat.media);
      if (snapshot) lease = snapshot;
      if (!chat.media || snapshot)
        admission = await admit(
          snapshot ? { encode: 0, question: snapshot.handle.questionBytes } : undefined,
        );
      else
        lease = await leaseVideo(
          chat.media,
          chat.sampling,
          chat.loss,
          chat.clip,
          chat.reduce ?? opts.reduce,
          ctrl.signal,
          admit,
        );
      reply.header('x-longshot-video-cache', lease ? (lease.hit ? 'hit' : 'miss') : 'none');
      const answer = timed(
        engine.chat(chat.turns, {
          ...chat.generation,
          video: lease?.handle,
          signal: ctrl.signal,
        }),
        () => metrics.firstToken((performance.now() - arrived) / 1000),
      );
      const id = `chatcmpl-${randomUUID()}`;
      const cached = lease?.hit ? lease.handle.tokens : 0;
      if (!chat.stream) {
        const result = await untilAborted(collect(answer, ctrl.signal), ctrl.signal).catch((e) => {
          throw toApiError(e, GENERATION);
        });
        outcome = 'ok';
        completionTokens = result.usage.completionTokens;
        return completion(id, result, cached);
      }
      const result = await streamAnswer(reply, req, id, answer, chat.includeUsage, cached, ctrl.signal);
      if (result) {
        outcome = 'ok';
        completionTokens = result.usage.completionTokens;
      }
      return reply;
    } finally {
      clearTimeout(timer);
      reply.raw.off('close', onClose);
      lease?.release();
      admission?.release();
      metrics.finished(outcome, completionTokens);
    }
  });

  /**
   * A request's decode memory by the model's estimate: its cache for its tokens (the prompt as the model will
   * tokenize it, plus max_tokens) and its fixed state, the prompt's activations while it is prefilled and
   * its row's scratch in a batched step; an encoded video's state is shared by every question about it. And
   * the question's size and turns, for what its video's family says a question over it holds beyond that.
   */
  function costOf(chat: ChatRequest): { decode: number; question: QuestionBudget } {
    const question = {
      textTokens: engine.promptTokens?.(chat.turns, chat.media?.kind) ?? estimatePromptTokens(chat.turns),
      newTokens: chat.generation.maxNewTokens ?? DEFAULT_MAX_TOKENS,
      turns: chat.turns,
    };
    const c = engine.info.decodeCache;
    if (!c) return { decode: 0, question };
    const decode =
      c.bytesPerSequence +
      c.bytesPerToken * (question.textTokens + question.newTokens) +
      (c.activationBytesPerToken ?? 0) * question.textTokens +
      (c.logitsBytes ?? 0);
    return { decode, question };
  }

  /**
   * The request's encoded video, leased once it is admitted (`admit` with the bytes its encode reserves: none
   * when the video is cached or being encoded, which is then held so that it is not evicted while the request
   * waits; and what a question over it costs: the plan's, or the kept video's). The lease's release also ends
   * the admission.
   */
  async function leaseVideo(
    ref: MediaRef,
    sampling: SamplingOptions,
    loss: LossPolicy,
    clip: Clip | undefined,
    reduce: ReductionRequest | undefined,
    signal: AbortSignal,
    admit: (video: VideoCost) => Promise<Admission>,
    progress?: VideoProgress,
  ): Promise<Lease> {
    const file = await untilAborted(resolveMedia(ref, policy, signal), signal).catch((e) => {
      throw toApiError(e, { param: ref.param });
    });
    let admission: Admission | undefined;
    const key = cacheKey(file.sha256, sampling, clip, reduce);
    const unpin = cache.pin(key);
    try {
      const encode = { ...sampling, ...loss, clip, reduce, signal, pieces: piecesFor(signal) };
      const plan = unpin
        ? null
        : await untilAborted(engine.planEncode?.(file.path, encode) ?? nothing, signal);
      admission = await admit({
        encode: plan?.peakBytes ?? 0,
        question: plan ? plan.questionBytes : cache.questionCost(key),
      });
      const leasing = cache.lease(
        key,
        () => engine.encodeVideo(file.path, { ...encode, progress: metrics.encoding(progress) }),
        plan?.questionBytes,
      );
      const lease = await untilAborted(leasing, signal).catch((e) => {
        // Gone before the encode ended: let go of the video once it is there, so that it can be evicted.
        leasing.then(
          (l) => l.release(),
          () => {},
        );
        throw e;
      });
      admission.encoded(); // the video is in the cache now, measured
      const held = admission;
      const leased: Lease = {
        ...lease,
        release: () => {
          lease.release();
          held.release();
        },
      };
      // An encoding made for a laxer request is held to this request's policy as well.
      try {
        checkFrameLoss(ref.url, lease.handle.decode, loss);
      } catch (e) {
        leased.release();
        throw e;
      }
      return leased;
    } catch (e) {
      admission?.release();
      throw toApiError(e, { param: ref.param, redact: file.redact });
    } finally {
      unpin?.();
      await file.release();
    }
  }

  const usageOf = (r: AskResult, cached: number) => ({
    prompt_tokens: r.usage.promptTokens + r.usage.videoTokens,
    completion_tokens: r.usage.completionTokens,
    total_tokens: r.usage.totalTokens,
    prompt_tokens_details: { cached_tokens: cached, video_tokens: r.usage.videoTokens },
  });

  function completion(id: string, r: AskResult, cached: number) {
    return {
      id,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: modelId,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: r.text },
          finish_reason: r.finishReason,
          logprobs: null,
        },
      ],
      usage: usageOf(r, cached),
      ...videoOf(r),
    };
  }

  async function streamAnswer(
    reply: FastifyReply,
    req: FastifyRequest,
    id: string,
    answer: AsyncIterable<string> & { result(): Promise<AskResult> },
    includeUsage: boolean,
    cached: number,
    signal: AbortSignal,
  ): Promise<AskResult | null> {
    const chunk = (delta: object, finish: string | null = null) => ({
      id,
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: modelId,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    const raw = reply.raw;
    const send = (data: unknown) =>
      raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-longshot-video-cache': String(reply.getHeader('x-longshot-video-cache') ?? 'none'),
    });
    try {
      send(chunk({ role: 'assistant', content: '' }));
      for await (const piece of answer) {
        signal.throwIfAborted();
        if (piece) send(chunk({ content: piece }));
      }
      const result = await answer.result();
      send({ ...chunk({}, result.finishReason), ...videoOf(result) });
      if (includeUsage)
        send({
          id,
          object: 'chat.completion.chunk',
          created: Math.floor(Date.now() / 1000),
          model: modelId,
          choices: [],
          usage: usageOf(result, cached),
        });
      send('[DONE]');
      return result;
    } catch (e) {
      const err = toApiError(signal.aborted ? signal.reason : e, GENERATION);
      if (!raw.destroyed) send(err.body);
      req.log.warn({ err: e }, 'stream ended with an error');
      return null;
    } finally {
      raw.end();
    }
  }

  if (opts.ui ?? true)
    void app.register(uiRoutes, {
      engine,
      modelId,
      policy,
      queue,
      cache,
      uploads,
      live: live.sessions,
      timeoutMs,
      // What the UI encodes is what a chat request without sampling fields asks for: the same cache entry.
      leaseVideo: (ref, signal, progress) =>
        leaseVideo(
          ref,
          {},
          {},
          undefined,
          opts.reduce,
          signal,
          // It only encodes: no question.
          ({ encode }) => queue.acquire(signal, { decode: 0, question: 0, encode }),
          progress,
        ),
    });

  return {
    app,
    queue,
    cache,
    live: live.sessions,
    async close() {
      queue.close();
      await app.close();
      cache.clear();
      await uploads.close();
    },
  };
}

/**
 * The extension fields (docs/server.md): `video` (frames requested, decoded and lost) and, when asked for,
 * `relevance` (each frame's share of the answer's attention over the video).
 */
function videoOf(r: AskResult) {
  return {
    ...(r.video && { video: decodeReportJson(r.video) }),
    ...(r.relevance && {
      relevance: { timestamps_sec: r.relevance.timestampsSec, scores: r.relevance.scores },
    }),
  };
}

/** What a request's video adds to its reservation: the encode's peak (0 when cached), a question's cost. */
interface VideoCost {
  encode: number;
  question: QuestionCost | undefined;
}

/** Video tokens per piece of a chunked prefill (ServeOptions.prefillPieceTokens). */
const DEFAULT_PIECE_TOKENS = 1024;

/** The prompt's tokens beyond its text (the chat template), and the facade's default answer length. */
const PROMPT_OVERHEAD = 64;
const DEFAULT_MAX_TOKENS = 512;

/**
 * A prompt's tokens where the engine cannot count them (no `ChatEngine.promptTokens`, or null: a model
 * without a tokenizer to render its prompt before it runs): about 2 characters a token, and the template's.
 */
const estimatePromptTokens = (turns: readonly ChatTurn[]): number =>
  Math.ceil(turns.reduce((n, t) => n + t.content.length, 0) / 2) + PROMPT_OVERHEAD;

const nothing = Promise.resolve(null);

type Streamed = AsyncIterable<string> & { result(): Promise<AskResult> };

/** The answer, calling `first` when its first piece of text arrives (time to first token). */
function timed(answer: Streamed, first: () => void): Streamed {
  return {
    async *[Symbol.asyncIterator]() {
      let seen = false;
      for await (const piece of answer) {
        if (!seen && piece) {
          seen = true;
          first();
        }
        yield piece;
      }
    },
    result: () => answer.result(),
  };
}

/** Failures while answering are about the conversation. */
const GENERATION = { param: 'messages' };

/** Cache key: the bytes plus the sampling settings, in a fixed key order, the clip and the token reduction. */
function cacheKey(sha256: string, s: SamplingOptions, clip?: Clip, reduce?: ReductionRequest): string {
  const keys = Object.keys(s).sort() as (keyof SamplingOptions)[];
  const window = clip ? `|clip=${clip.startSec}-${clip.endSec}` : '';
  const r = reduce && reduce.method !== 'none' ? `|reduce=${reduce.method}:${reduce.keep ?? ''}` : '';
  return `${sha256}|${keys.map((k) => `${k}=${s[k]}`).join(',')}${window}${r}`;
}

/** Runs the answer to its end (the Answer gathers the pieces), stopping at the next piece after an abort. */
async function collect(
  answer: AsyncIterable<string> & { result(): Promise<AskResult> },
  signal: AbortSignal,
) {
  for await (const _ of answer) signal.throwIfAborted();
  return answer.result();
}

/** Resolves with `p`, or rejects with the signal's reason as soon as it is aborted. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function sendError(reply: FastifyReply, e: ApiError): void {
  if (e.retryAfter) reply.header('retry-after', String(e.retryAfter));
  void reply.status(e.status).send(e.body);
}
