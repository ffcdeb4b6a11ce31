/**
 * Batched decoding (generate/batch.ts + each family's `stepMany`) on the tiny checkpoints (CPU, f32): one
 * batched step equals each session's own step (≤ 1e-5 relative), and generations running side by side —
 * different prompt lengths, different or shared videos, text-only, greedy and sampled, joining and leaving
 * between steps — give exactly the tokens they give alone. Long work that pauses with `decodeTurn` between
 * its pieces (chunked prefill) lets one batched step run per pause, and is never held up by idle members.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { batcherFor, DecodeBatcher, decodeTurn, sampleRows } from '../../src/generate/batch.js';
import { type GenerateOptions, generateAll } from '../../src/generate/generate.js';
import type { CausalLM } from '../../src/generate/types.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { Qwen2VL, type Qwen2VLInputs } from '../../src/models/qwen2vl/model.js';
import { Vamba } from '../../src/models/vamba/model.js';
import * as ops from '../../src/runtime/ops.js';
import { relErr } from '../helpers.js';
import { FIXTURES, fixtureInputs, readArrays, readJson } from '../models/qwen2vl-fixtures.js';
import { readReference, VAMBA_FIXTURES } from '../models/vamba-fixtures.js';

const cpu = cpuBackend();

interface Case<I> {
  session: () => CausalLM<I> & Disposable;
  input: I;
  opts: GenerateOptions;
}

const OPTS: GenerateOptions[] = [
  { maxNewTokens: 7, stopTokens: [] },
  { maxNewTokens: 3, stopTokens: [] },
  { maxNewTokens: 9, stopTokens: [], doSample: true, temperature: 0.9, topK: 20, seed: 5 },
  { maxNewTokens: 6, stopTokens: [], repetitionPenalty: 1.3 },
];

/**
 * Runs the cases alone (batching off), then together (the last one joining after the first has two tokens),
 * and checks the tokens agree and that steps really were shared.
 */
async function sameTokensTogether<I>(key: object, cases: Case<I>[]): Promise<void> {
  const alone: number[][] = [];
  for (const c of cases) {
    using s = c.session();
    alone.push((await generateAll(s, c.input, { ...c.opts, batch: false })).tokens);
  }
  const stats = batcherFor(key).stats;
  const before = { steps: stats.steps, tokens: stats.tokens };
  const run = async (c: Case<I>) => {
    using s = c.session();
    return (await generateAll(s, c.input, c.opts)).tokens;
  };
  const late = cases.at(-1)!;
  const together = await Promise.all([
    ...cases.slice(0, -1).map(run),
    (async () => {
      while (stats.steps - before.steps < 2) await new Promise((r) => setImmediate(r));
      return run(late);
    })(),
  ]);
  assert.deepEqual(together, alone);
  const steps = stats.steps - before.steps;
  const tokens = stats.tokens - before.tokens;
  assert.equal(
    tokens,
    alone.reduce((n, t) => n + t.length - 1, 0),
  );
  assert.ok(steps < tokens, `${steps} steps for ${tokens} tokens: nothing was batched`);
  assert.equal(stats.members, 0);
}

/** stepMany's rows against each session's own step, from the same prefilled states. */
async function stepManyMatches<I>(make: () => (CausalLM<I> & Disposable)[], inputs: I[], tokens: number[]) {
  const solo = make();
  const many = make();
  try {
    const want: Float32Array[] = [];
    for (const [i, s] of solo.entries()) {
      (await s.prefill(inputs[i])).dispose();
      const t = await s.step(tokens[i]);
      want.push((await t.data()) as Float32Array);
      t.dispose();
    }
    for (const [i, s] of many.entries()) (await s.prefill(inputs[i])).dispose();
    const logits = many[0].stepMany!(many, tokens);
    const rows = logits.shape[0];
    assert.equal(rows, many.length);
    for (let i = 0; i < rows; i++) {
      const got = (await ops.slice(logits, 0, i, i + 1).data()) as Float32Array;
      const err = relErr(got, want[i]);
      assert.ok(err <= 1e-5, `row ${i}: relative error ${err.toExponential(2)}`);
    }
    logits.dispose();
  } finally {
    for (const s of [...solo, ...many]) s[Symbol.dispose]();
  }
}

describe('batched decoding', () => {
  it('Nemotron-H: a step of many sessions equals their own steps; generations together equal alone', async () => {
    using model = await NemotronHForCausalLM.load('test/fixtures/nemotron_h/nano-like', { backend: cpu });
    const prompts = [[5, 17, 230, 41, 9], [88], [301, 12, 12, 90, 7, 66, 250, 3, 19], [44, 45, 46]];
    await stepManyMatches(() => prompts.map(() => model.session({ capacity: 4 })), prompts, [3, 99, 250, 7]);
    await sameTokensTogether(
      model,
      prompts.map((input, i) => ({ session: () => model.session({ capacity: 8 }), input, opts: OPTS[i] })),
    );
  });

  it('Qwen2-VL: questions on a shared video prefix and a text-only prompt decode together', async () => {
    using model = await Qwen2VL.load(join(FIXTURES, 'tiny-a'), { backend: cpu });
    const meta = await readJson(join(FIXTURES, 'tiny-a', 'reference.json'));
    const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
    const ids: number[] = meta.prompts.video.input_ids;
    const video = fixtureInputs('video', ids, proc);
    const { video_token_id: pad, vision_end_token_id: end } = model.config;
    const cut = ids.lastIndexOf(pad) + 1 + (ids[ids.lastIndexOf(pad) + 1] === end ? 1 : 0);
    using embeds = model.encodeVision(video.pixelValuesVideos!, video.videoGridThw!);
    const withVideo = (inputIds: number[]): Qwen2VLInputs => ({
      ...video,
      inputIds,
      pixelValuesVideos: null,
      videoEmbeds: embeds,
    });
    using prefix = model.prefillPrefix(withVideo(ids.slice(0, cut)), { room: 4 });
    const head = ids.slice(0, cut);
    const inputs: Qwen2VLInputs[] = [
      withVideo([...head, ...ids.slice(cut)]),
      { inputIds: [95, 7, 300, 41, 286, 11] },
      withVideo([...head, 12]),
      withVideo([...head, 95, 7]),
    ];
    // The whole prompt runs for the video question without the prefix (its M-RoPE delta is the prompt's own).
    const sessionFor = (i: number) => () =>
      model.session({ capacity: 8, prefix: i === 0 || i === 1 ? null : prefix });
    await stepManyMatches(() => inputs.map((_, i) => sessionFor(i)()), inputs, [3, 99, 250, 7]);
    await sameTokensTogether(
      model,
      inputs.map((input, i) => ({ session: sessionFor(i), input, opts: OPTS[i] })),
    );
  });

  it('Vamba: questions on two different videos decode together', async () => {
    using model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend: cpu });
    const ref = await readReference('tiny-a');
    using a = model.encodeVideo(ref.pixelValues, ref.grid, { chunkLen: 16 });
    using b = model.encodeVideo(
      ref.pixelValues.map((v) => -0.5 * v),
      ref.grid,
      { chunkLen: 16 },
    );
    const prompts = [ref.inputIds, ref.inputIds.slice(0, 3), [...ref.inputIds, 40, 41], [7]];
    const videoOf = (i: number) => (i % 2 ? b : a);
    await stepManyMatches(
      () => prompts.map((_, i) => model.session(videoOf(i), { capacity: 4 })),
      prompts,
      [3, 9, 25, 7],
    );
    await sameTokensTogether(
      model,
      prompts.map((input, i) => ({
        session: () => model.session(videoOf(i), { capacity: 4 }),
        input,
        opts: OPTS[i],
      })),
    );
  });

  it('sampleRows samples each row with its own settings and reads every id back', async () => {
    const vocab = 6;
    const logits = [
      [0, 5, 1, 2, 3, 4], // greedy → 1
      [9, 1, 0, 0, 0, 0], // 0 penalised (9 ÷ 100 < 1) → 1
      [0, 0, 0, 0, 7, 0], // greedy → 4
      [0, 0, 0, 0, 0, 0], // top-k 1 keeps id 0 whatever the draw
    ];
    const t = ops.tensor(cpu, Float32Array.from(logits.flat()), [4, vocab]);
    const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seen: [], uniform: 0.3 };
    const ids = await sampleRows(t, [
      greedy,
      { ...greedy, repetitionPenalty: 100, seen: [0] },
      greedy,
      { temperature: 1, topK: 1, topP: 1, repetitionPenalty: 1, seen: [], uniform: 0.99 },
    ]);
    assert.deepEqual([...ids], [1, 1, 4, 0]);
    assert.ok(t.disposed);
  });

  it('decodeTurn: a pause of long work waits for one batched step, at once when nothing is decoding', async () => {
    const log: string[] = [];
    const vocab = 3;
    const session = {
      step: async (token: number) => {
        log.push(`step ${token}`);
        return ops.tensor(
          cpu,
          Float32Array.from({ length: vocab }, (_, i) => (i === token ? 1 : 0)),
          [1, vocab],
        );
      },
    } as unknown as CausalLM<unknown>;
    const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seen: [], uniform: 0 };
    const turn = () => decodeTurn().then(() => log.push('turn'));
    await turn(); // nothing decodes
    const b = new DecodeBatcher();
    b.join();
    b.join(); // a second member that is busy elsewhere: the step runs without it a turn later
    const next = b.step(session, 2, greedy).then((id) => log.push(`got ${id}`));
    await turn();
    await next;
    assert.deepEqual(log, ['turn', 'step 2', 'got 2', 'turn']);
    // Members that never step (their clients stalled) do not hold a pause up.
    await turn();
    b.leave();
    b.leave();
    await turn();
    assert.deepEqual(log.slice(4), ['turn', 'turn']);

    // After a pause was woken, the next step waits a turn of the event loop (I/O runs between piece and step);
    // otherwise a step whose members are all waiting runs at once.
    const c = new DecodeBatcher();
    c.join();
    const order: string[] = [];
    const stepAfter = async (pause: boolean) => {
      const first = c.step(session, 1, greedy);
      if (pause) await decodeTurn();
      await first;
      setImmediate(() => order.push('event loop'));
      await c.step(session, 0, greedy);
      order.push('step');
      await new Promise((r) => setImmediate(r));
    };
    await stepAfter(false);
    await stepAfter(true);
    c.leave();
    assert.deepEqual(order, ['step', 'event loop', 'event loop', 'step']);
  });
});
