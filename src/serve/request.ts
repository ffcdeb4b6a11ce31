/**
 * Validation of an OpenAI Chat Completions request. Every problem is a 400 whose message names the field
 * (`messages[1].content[0].video_url.url`) and what is expected. Besides the standard fields, longshot
 * reads frame sampling extensions at the top level (`frames`, `fps`, `sampling`, `max_edge`, `min_edge`,
 * `clip_start`/`clip_end` in seconds; the openai clients send them through `extra_body`; `fps` alone means
 * `"sampling": "fps"`), `reasoning_budget` for models that think first, `relevance` (also return where in the
 * video the answer looked), a token reduction (`reduce`: "uniform:0.25") and vLLM's `top_k` /
 * `repetition_penalty`.
 */
import type { ChatTurn, GenerationOptions, SamplingOptions } from '../facade/types.js';
import type { Clip, LossPolicy } from '../media/index.js';
import { parseReduction, type ReductionRequest } from '../models/reduction.js';
import { badRequest } from './errors.js';

export interface MediaRef {
  kind: 'video' | 'image';
  url: string;
  /** Where in the request it was (for error messages). */
  param: string;
}

export interface ChatRequest {
  model: string;
  turns: ChatTurn[];
  media?: MediaRef;
  generation: GenerationOptions;
  sampling: SamplingOptions;
  /** `clip_start`/`clip_end`: sample only this stretch of the video. */
  clip?: Clip;
  /** `strict` and `max_lost_fraction`: how much of a damaged video may be lost before it is refused. */
  loss: LossPolicy;
  /** `reduce` ("method" or "method:keep"): a token reduction for the video (models/reduction.ts). */
  reduce?: ReductionRequest;
  stream: boolean;
  includeUsage: boolean;
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`);

function expect(ok: boolean, param: string, what: string, got: unknown): void {
  if (!ok)
    throw badRequest(
      `${param}: expected ${what}, got ${typeName(got)}${typeof got === 'number' || typeof got === 'string' ? ` (${JSON.stringify(got)})` : ''}`,
      param,
    );
}

function num(body: Json, key: string, what: string, ok: (v: number) => boolean): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  expect(typeof v === 'number' && Number.isFinite(v) && ok(v), key, what, v);
  return v as number;
}

const UNSUPPORTED = ['tools', 'functions', 'tool_choice', 'function_call', 'audio', 'prediction'] as const;

export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObj(body)) throw badRequest('the request body must be a JSON object');
  expect(typeof body.model === 'string' && body.model.length > 0, 'model', 'a model id string', body.model);
  for (const key of UNSUPPORTED)
    if (body[key] !== undefined && body[key] !== null)
      throw badRequest(`${key} is not supported by this server`, key);
  num(body, 'n', 'the integer 1 (one choice per request)', (v) => v === 1);
  if (body.stop !== undefined && body.stop !== null && !(Array.isArray(body.stop) && body.stop.length === 0))
    throw badRequest('stop sequences are not supported by this server', 'stop');
  if (body.logprobs === true) throw badRequest('logprobs are not supported by this server', 'logprobs');
  const format = body.response_format;
  if (format !== undefined && format !== null && !(isObj(format) && format.type === 'text'))
    throw badRequest('only response_format {"type": "text"} is supported', 'response_format');
  expect(
    body.stream === undefined || body.stream === null || typeof body.stream === 'boolean',
    'stream',
    'a boolean',
    body.stream,
  );
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null)
    expect(isObj(streamOptions), 'stream_options', 'an object', streamOptions);

  const { turns, media } = parseMessages(body.messages);
  const maxTokens =
    num(body, 'max_completion_tokens', 'a positive integer', (v) => Number.isInteger(v) && v >= 1) ??
    num(body, 'max_tokens', 'a positive integer', (v) => Number.isInteger(v) && v >= 1);
  const topK = num(
    body,
    'top_k',
    'a positive integer, or -1 for off',
    (v) => Number.isInteger(v) && (v >= 1 || v === -1),
  );
  const generation: GenerationOptions = {
    maxNewTokens: maxTokens,
    temperature: num(body, 'temperature', 'a number from 0 to 2', (v) => v >= 0 && v <= 2),
    topP: num(body, 'top_p', 'a number in (0, 1]', (v) => v > 0 && v <= 1),
    topK: topK === -1 ? undefined : topK,
    repetitionPenalty: num(body, 'repetition_penalty', 'a number > 0', (v) => v > 0),
    seed: num(body, 'seed', 'an integer', Number.isInteger),
    reasoningBudget: num(
      body,
      'reasoning_budget',
      'a positive integer',
      (v) => Number.isInteger(v) && v >= 1,
    ),
  };
  const sampling: SamplingOptions = {
    frames: num(body, 'frames', 'an integer ≥ 2 (frames go in pairs)', (v) => Number.isInteger(v) && v >= 2),
    fps: num(body, 'fps', 'a number > 0', (v) => v > 0),
    maxEdge: num(body, 'max_edge', 'a positive integer', (v) => Number.isInteger(v) && v >= 1),
    minEdge: num(body, 'min_edge', 'a positive integer', (v) => Number.isInteger(v) && v >= 1),
  };
  if (body.sampling !== undefined && body.sampling !== null) {
    expect(
      ['middle', 'uniform', 'fps', 'first-seconds'].includes(body.sampling as string),
      'sampling',
      '"middle", "uniform", "fps" or "first-seconds"',
      body.sampling,
    );
    sampling.sampling = body.sampling as SamplingOptions['sampling'];
  }
  // As on the command line: a rate alone means fps sampling, and contradicts a fixed-count policy.
  if (sampling.fps !== undefined) {
    if (sampling.sampling !== undefined && sampling.sampling !== 'fps')
      throw badRequest(
        `fps: a rate needs "sampling": "fps" (got "${sampling.sampling}"); drop one of them`,
        'fps',
      );
    sampling.sampling = 'fps';
  }
  const clipStart = num(body, 'clip_start', 'seconds ≥ 0', (v) => v >= 0);
  const clipEnd = num(body, 'clip_end', 'seconds > 0', (v) => v > 0);
  if ((clipStart === undefined) !== (clipEnd === undefined))
    throw badRequest(
      `${clipStart === undefined ? 'clip_start' : 'clip_end'}: a clip needs both clip_start and clip_end`,
      clipStart === undefined ? 'clip_start' : 'clip_end',
    );
  if (clipStart !== undefined && clipEnd !== undefined && clipEnd <= clipStart)
    throw badRequest(`clip_end: must be after clip_start (${clipStart} s), got ${clipEnd}`, 'clip_end');
  const clip =
    clipStart !== undefined && clipEnd !== undefined ? { startSec: clipStart, endSec: clipEnd } : undefined;
  for (const key of ['strict', 'relevance'])
    expect(
      body[key] === undefined || body[key] === null || typeof body[key] === 'boolean',
      key,
      'a boolean',
      body[key],
    );
  if (body.relevance === true) generation.relevance = true;
  const loss: LossPolicy = {
    strict: body.strict === true ? true : undefined,
    maxLostFraction: num(body, 'max_lost_fraction', 'a fraction from 0 to 1', (v) => v >= 0 && v <= 1),
    advice:
      'the file is truncated or damaged: repair or re-encode it, or allow more with "max_lost_fraction"',
  };
  let reduce: ReductionRequest | undefined;
  if (body.reduce !== undefined && body.reduce !== null) {
    expect(typeof body.reduce === 'string', 'reduce', 'a string such as "uniform:0.25"', body.reduce);
    try {
      reduce = parseReduction(body.reduce as string);
    } catch (e) {
      throw badRequest((e as Error).message, 'reduce');
    }
  }
  return {
    model: body.model as string,
    turns,
    media,
    ...(reduce ? { reduce } : {}),
    loss: dropUndefined(loss),
    generation: dropUndefined(generation),
    sampling: dropUndefined(sampling),
    ...(clip && { clip }),
    stream: body.stream === true,
    includeUsage: isObj(streamOptions) && streamOptions.include_usage === true,
  };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const ROLES: Record<string, ChatTurn['role']> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
};

function parseMessages(messages: unknown): { turns: ChatTurn[]; media?: MediaRef } {
  expect(
    Array.isArray(messages) && messages.length > 0,
    'messages',
    'a non-empty array of messages',
    messages,
  );
  const turns: ChatTurn[] = [];
  let media: MediaRef | undefined;
  (messages as unknown[]).forEach((m, i) => {
    const at = `messages[${i}]`;
    expect(isObj(m), at, 'a message object', m);
    const msg = m as Json;
    const role = ROLES[msg.role as string];
    if (!role)
      throw badRequest(
        `${at}.role: expected "system", "developer", "user" or "assistant", got ${JSON.stringify(msg.role)}`,
        `${at}.role`,
      );
    const texts: string[] = [];
    if (typeof msg.content === 'string') texts.push(msg.content);
    else {
      expect(
        Array.isArray(msg.content),
        `${at}.content`,
        'a string or an array of content parts',
        msg.content,
      );
      (msg.content as unknown[]).forEach((p, j) => {
        const pat = `${at}.content[${j}]`;
        expect(isObj(p), pat, 'a content part object', p);
        const part = p as Json;
        if (part.type === 'text') {
          expect(typeof part.text === 'string', `${pat}.text`, 'a string', part.text);
          texts.push(part.text as string);
          return;
        }
        if (part.type !== 'image_url' && part.type !== 'video_url')
          throw badRequest(
            `${pat}.type: expected "text", "image_url" or "video_url", got ${JSON.stringify(part.type)}`,
            `${pat}.type`,
          );
        if (role !== 'user') throw badRequest(`${pat}: only user messages can carry images or videos`, pat);
        const key = part.type as 'image_url' | 'video_url';
        const ref = part[key];
        const url = isObj(ref) ? ref.url : ref; // {url} per the spec; a bare string is accepted too
        expect(typeof url === 'string' && url.length > 0, `${pat}.${key}.url`, 'a URL or path string', url);
        if (media)
          throw badRequest(
            `${pat}: this server answers about one video or image per request (the first is ${media.param})`,
            pat,
          );
        media = {
          kind: key === 'video_url' ? 'video' : 'image',
          url: url as string,
          param: `${pat}.${key}.url`,
        };
      });
    }
    turns.push({ role, content: texts.join('\n') });
  });
  if (turns[turns.length - 1].role !== 'user')
    throw badRequest('the last message must be from the user', `messages[${turns.length - 1}].role`);
  return { turns, media };
}
