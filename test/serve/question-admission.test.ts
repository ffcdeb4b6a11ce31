/**
 * A tiny TimeViper server admitting questions by their cost over the video (ledger.ts `question`): each question
 * runs the LLM over every frame's tokens again, so it reserves the family's question cost (the plan's, equal to
 * the encoded video's) beside its decode cache until it ends; a new video reserves its encode as well, a cached
 * one only the question. Two questions about a cached video that do not fit together run one after the other
 * (the second waits in line, then answers); a question that could never fit gets 413 naming the sizes.
 * The engine is the real model, wrapped to read the ledger while it encodes and answers.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import '../../src/backends/index.js';
import { Answer } from '../../src/facade/answer.js';
import type { ChatEngine } from '../../src/facade/engine.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import type { EncodePlan } from '../../src/models/family.js';
import { getBackend } from '../../src/runtime/device.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import type { LedgerSnapshot } from '../../src/serve/ledger.js';
import { writeTinyTimeViper } from '../facade/tiny-models.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { parseMetrics } from './metrics-text.js';
import { askAboutClip } from './tiny-runners.js';

const FRAMES = 96;
const MAX_TOKENS = 2;

describe('admission by a question’s cost over its video (tiny TimeViper)', () => {
  let dir: string;
  let model: VideoLM;
  let plan: EncodePlan;
  let weights: number;
  /**
   * The question's size as the server counts it (its prompt's tokens, the chat template included, and
   * max_tokens): the prompt's tokens as the model counted them answering 'what?' about the clip.
   */
  let QUESTION: { textTokens: number; newTokens: number };
  before(async () => {
    dir = scratch();
    const m = join(dir, 'timeviper');
    mkdirSync(m);
    await writeTinyTimeViper(m);
    await makeVideo(join(dir, 'clip.mp4'), { width: 96, height: 64, frames: FRAMES, fps: 10, encode: H264 });
    model = await VideoLM.load(m, { device: 'cpu' });
    plan = (await model.planEncode(join(dir, 'clip.mp4'), { frames: FRAMES, sampling: 'uniform' }))!;
    const answered = await model
      .ask(join(dir, 'clip.mp4'), 'what?', { frames: FRAMES, sampling: 'uniform', maxNewTokens: MAX_TOKENS })
      .result();
    QUESTION = { textTokens: answered.usage.promptTokens, newTokens: MAX_TOKENS };
    weights = (await getBackend('cpu')).memory().current;
  });
  after(() => model.dispose());

  /** What the wrapped engine saw: the ledger when an encode and each answer began, and the line then. */
  interface Seen {
    /** Set: the next answer starts only once another request waits in line (or after 5 s). */
    gate: boolean;
    encodes: LedgerSnapshot[];
    chats: { ledger: LedgerSnapshot; running: number; queuedWhileRunning: number; gauge?: number }[];
  }

  /** A server over the model, its engine wrapped to record what it saw (`Seen`). */
  function serve(roomBytes: number): { server: LongshotServer; seen: Seen } {
    const seen: Seen = { gate: false, encodes: [], chats: [] };
    let server!: LongshotServer;
    const engine: ChatEngine = {
      info: model.info,
      planEncode: (input, o) => model.planEncode(input, o),
      promptTokens: (turns, media) => model.promptTokens(turns, media),
      encodeVideo: (input, o) => {
        seen.encodes.push(server.queue.ledger.snapshot);
        return model.encodeVideo(input, o);
      },
      chat: (turns, opts) => {
        const entry: Seen['chats'][number] = {
          ledger: server.queue.ledger.snapshot,
          running: server.queue.stats.running,
          queuedWhileRunning: 0,
        };
        seen.chats.push(entry);
        const gated = seen.gate;
        seen.gate = false;
        return new Answer(
          (async function* () {
            const t0 = Date.now();
            while (gated && server.queue.stats.queued < 1 && Date.now() - t0 < 5000)
              await new Promise((r) => setTimeout(r, 5));
            entry.queuedWhileRunning = server.queue.stats.queued;
            const metrics = await server.app.inject({ method: 'GET', url: '/metrics' });
            entry.gauge = parseMetrics(metrics.body).samples.get('longshot_memory_question_reserved_bytes');
            const answer = model.chat(turns, opts);
            for await (const piece of answer) yield piece;
            const { text: _, ...result } = await answer.result();
            return result;
          })(),
        );
      },
    };
    server = createServer(engine, {
      modelId: 'tiny',
      media: { allowedRoot: dir },
      memoryBudgetBytes: weights + roomBytes,
      weightsBytes: weights,
      concurrency: 4,
      prefillPieceTokens: 0,
    });
    return { server, seen };
  }

  async function ask(server: LongshotServer) {
    const res = await askAboutClip(server, FRAMES, MAX_TOKENS);
    return { status: res.status, cache: res.headers.get('x-longshot-video-cache'), body: await res.json() };
  }

  it('reserves the planned question with the encode, then the question alone on a cache hit; two that do not fit together run in turn', async () => {
    const question = plan.questionBytes!(QUESTION);
    const [state, encode] = [plan.stateBytes, plan.peakBytes];
    // Room for a question and its video's encode, then for the video, a question and half another: not two.
    const room = Math.max(encode + question, state + 1.5 * question);
    assert.ok(state + 2 * question > room, `question ${question} B, encode ${encode} B, video ${state} B`);
    const { server, seen } = serve(room);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const miss = await ask(server);
      assert.equal(miss.status, 200, JSON.stringify(miss.body));
      assert.equal(miss.cache, 'miss');
      const { prompt_tokens, prompt_tokens_details } = miss.body.usage;
      assert.equal(prompt_tokens - prompt_tokens_details.video_tokens, QUESTION.textTokens);
      // While it encoded: the encode's peak and the question reserved; while it answered: the question alone.
      assert.equal(seen.encodes.length, 1);
      assert.equal(seen.encodes[0].encode_reserved_bytes, encode);
      assert.equal(seen.encodes[0].question_reserved_bytes, question);
      assert.equal(seen.encodes[0].decode_reserved_bytes, 0); // TimeViper's question cost is all of it
      assert.deepEqual(
        [seen.chats[0].ledger.encode_reserved_bytes, seen.chats[0].ledger.question_reserved_bytes],
        [0, question],
      );

      // Sent together, the first answers only once the second waits in line (or after 5 s): without the
      // question's reservation both would be admitted and run at once.
      seen.chats.length = 0;
      seen.gate = true;
      const both = await Promise.all([ask(server), ask(server)]);
      assert.deepEqual(
        both.map((r) => [r.status, r.cache]),
        [
          [200, 'hit'],
          [200, 'hit'],
        ],
      );
      assert.equal(seen.encodes.length, 1, 'a cache hit encodes nothing');
      assert.equal(seen.chats.length, 2);
      // Each hit reserved its question and no encode; the second waited in line while the first answered.
      for (const c of seen.chats) {
        assert.equal(c.ledger.encode_reserved_bytes, 0);
        assert.equal(c.ledger.question_reserved_bytes, question);
        assert.equal(c.running, 1);
        assert.equal(c.gauge, question, '/metrics shows the question reserved');
      }
      assert.equal(seen.chats[0].queuedWhileRunning, 1);
      assert.equal(server.queue.ledger.snapshot.question_reserved_bytes, 0);
    } finally {
      await server.close();
    }
  });

  it('refuses a question that could never fit with 413 naming its cost and what to do', async () => {
    const question = plan.questionBytes!(QUESTION);
    const { server } = serve(plan.peakBytes + question / 2);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const refused = await ask(server);
      assert.equal(refused.status, 413);
      assert.equal(refused.body.error.code, 'request_too_large');
      assert.equal(refused.body.error.param, 'frames');
      assert.match(
        refused.body.error.message,
        /needs about \d+ MiB \(decode cache 0 MiB, a question over its video \d+ MiB, encoding its video \d+ MiB\) but the server has \d+ MiB for requests/,
      );
      assert.match(refused.body.error.message, /fewer frames.*--memory-budget.*more memory/);
    } finally {
      await server.close();
    }
  });
});
