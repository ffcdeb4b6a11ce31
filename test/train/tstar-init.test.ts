/**
 * A TSTAR-MambaMia started from a trained Qwen2-VL (`model.initFromQwen2VL`, as the MambaMia paper builds TSTAR):
 * recipes/needle-mambamia-v2.json's model holds the shipped tiny needle Qwen2-VL's vision tower and LLM tensor
 * for tensor, its token rows moved from tokenizer v1 to v2 by word, and the compressor of the from-scratch model of
 * the same seed; bad uses of the field are clear errors; and a few CPU steps on 16-frame needle videos from those
 * weights reach a loss the same steps from scratch do not.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { InputError } from '../../src/errors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { getBackend } from '../../src/runtime/device.js';
import { bf16ToF32 } from '../../src/runtime/dtype.js';
import { autogradEngine } from '../../src/train/engine.js';
import { parseRecipe, type Recipe } from '../../src/train/recipe.js';
import { setupModel } from '../../src/train/setup.js';
import { train } from '../../src/train/trainer.js';
import { TstarTrainModel } from '../../src/train/tstar.js';
import { vocabularyOf } from '../../src/train/vocab.js';
import { type RecipeJson, recipeError, TINY_MAMBAMIA_PATH, tinyJson } from './tiny.js';

const RECIPE = join(import.meta.dirname, '..', '..', 'recipes', 'needle-mambamia-v2.json');
const QWEN = join(import.meta.dirname, '..', '..', 'models', 'needle-qwen2vl-tiny');
const TOKEN_ROWS = ['model.embed_tokens.weight', 'lm_head.weight'];

/** recipes/needle-mambamia-v2.json with `edit` applied to its JSON. */
async function recipeWith(edit: (j: RecipeJson) => void = () => {}): Promise<Recipe> {
  const j = JSON.parse(await readFile(RECIPE, 'utf8')) as RecipeJson;
  edit(j);
  return parseRecipe(j, RECIPE, dirname(RECIPE));
}

/** A checkpoint tensor's values as f32. */
async function f32Of(ck: Checkpoint, name: string): Promise<{ shape: number[]; data: Float32Array }> {
  const t = await ck.read(name);
  const data =
    t.dtype === 'BF16'
      ? Float32Array.from(t.data as Uint16Array, (x) => bf16ToF32(x))
      : Float32Array.from(t.data as Float32Array);
  return { shape: [...t.shape], data };
}

const vocabOf = (tokenizerJson: string): Record<string, number> =>
  (JSON.parse(tokenizerJson) as { model: { vocab: Record<string, number> } }).model.vocab;

test('the TSTAR holds the Qwen2-VL’s tower and LLM (token rows moved by word) and a fresh compressor', async () => {
  const cpu = await getBackend('cpu');
  const recipe = await recipeWith();
  assert.equal(recipe.model.initFromQwen2VL, QWEN);
  const setup = await setupModel(recipe, cpu, 'f32', null);
  const scratch = await setupModel(
    { ...recipe, model: { ...recipe.model, initFromQwen2VL: '' } },
    cpu,
    'f32',
    null,
  );
  const ck = await Checkpoint.open(QWEN);
  try {
    const ours = setup.model.weights;
    const value = async (n: string) => Float32Array.from(await ours.get(n)!.data());
    // Every Qwen2-VL tensor is one of the TSTAR's, under the same name.
    const names = ck.names();
    assert.equal(names.length, 82);
    const oldVocab = vocabOf(await readFile(join(QWEN, 'tokenizer.json'), 'utf8'));
    const newVocab = vocabOf(setup.files['tokenizer.json']!);
    const shared = Object.keys(newVocab).filter((w) => w in oldVocab);
    assert.ok(shared.filter((w) => oldVocab[w] !== newVocab[w]).length > 30, 'tokens that move');
    for (const n of names) {
      const want = await f32Of(ck, n);
      const got = await value(n);
      if (!TOKEN_ROWS.includes(n)) {
        assert.deepEqual(ours.get(n)!.shape, want.shape, n);
        assert.ok(
          got.every((x, i) => x === want.data[i]),
          `${n} is not the checkpoint's`,
        );
        continue;
      }
      const width = want.shape[1];
      assert.deepEqual(ours.get(n)!.shape, [Object.keys(newVocab).length, width], n);
      for (const w of shared)
        for (let c = 0; c < width; c++)
          assert.equal(got[newVocab[w] * width + c], want.data[oldVocab[w] * width + c], `${n} row of ${w}`);
    }
    // Everything else is the compressor, as the from-scratch model of this seed has it.
    const rest = [...ours.keys()].filter((n) => !names.includes(n));
    assert.ok(rest.length > 20 && rest.every((n) => n.startsWith('mm_projector.')), rest.join(', '));
    for (const n of rest) {
      const fresh = await scratch.model.weights.get(n)!.data();
      assert.deepEqual(await value(n), Float32Array.from(fresh), n);
    }
    // …while the from-scratch tower does differ: the copy above is not the seeded init by chance.
    const pe = 'visual.patch_embed.proj.weight';
    assert.notDeepEqual(await value(pe), Float32Array.from(await scratch.model.weights.get(pe)!.data()));
  } finally {
    await ck.close();
    setup.model[Symbol.dispose]();
    scratch.model[Symbol.dispose]();
  }
});

test('the vocabulary a remap reads holds the added tokens (a Qwen2 tokenizer keeps its specials only there)', () => {
  const json = JSON.stringify({
    model: { vocab: { a: 0, b: 1 } },
    added_tokens: [{ id: 2, content: '<|im_end|>', special: true }],
  });
  assert.deepEqual(vocabularyOf(json, 't'), { a: 0, b: 1, '<|im_end|>': 2 });
});

const parseError = (edit: (j: RecipeJson) => void) => recipeError(edit, TINY_MAMBAMIA_PATH);

test('initFromQwen2VL: bad uses are errors that name the problem', async () => {
  const withInit = (j: RecipeJson) => {
    j.model.initFromQwen2VL = 'qwen';
  };
  // Accepted on a TSTAR from scratch; the path resolves against the recipe.
  const ok = tinyJson(TINY_MAMBAMIA_PATH);
  withInit(ok);
  assert.equal(parseRecipe(ok, 'r.json', '/tmp').model.initFromQwen2VL, '/tmp/qwen');
  assert.match(
    parseError((j) => {
      withInit(j);
      j.model.from = '/some/checkpoint';
      delete j.model.config;
    }),
    /^recipe r\.json: model\.initFromQwen2VL is only for "from": "scratch"/,
  );
  assert.match(
    parseError((j) => {
      Object.assign(j, tinyJson());
      withInit(j);
    }),
    /model\.initFromQwen2VL .*needs "family": "mambamia", got "vamba"/,
  );

  const cpu = await getBackend('cpu');
  const config = (await recipeWith()).model.config!;
  const build = (cfg: Record<string, unknown>, dir: string) =>
    TstarTrainModel.fromQwen2VL({ ...cfg, vocab_size: 100 }, cpu, 'f32', 0, 1, {
      dir,
      tokenizerJson: '{"model":{"vocab":{}}}',
    });
  const tmp = await mkdtemp(join(tmpdir(), 'longshot-tstar-init-'));
  try {
    await assert.rejects(
      build(config, join(tmp, 'absent')),
      (e: Error) =>
        e instanceof InputError &&
        e.message.includes(`model.initFromQwen2VL ${join(tmp, 'absent')}: no config.json there`),
    );
    await writeFile(join(tmp, 'config.json'), JSON.stringify({ model_type: 'tstar' }));
    await assert.rejects(build(config, tmp), /config\.json's model_type is "tstar", not "qwen2_vl"/);
    const vision = config.vision_config as Record<string, unknown>;
    const text = config.text_config as Record<string, unknown>;
    await assert.rejects(
      build({ ...config, vision_config: { ...vision, embed_dim: 64 } }, QWEN),
      /the checkpoint's vision_config embed_dim is 128 but model\.config\.vision_config\.embed_dim is 64/,
    );
    await assert.rejects(
      build({ ...config, text_config: { ...text, intermediate_size: 256 } }, QWEN),
      /the checkpoint's text_config intermediate_size is 384 but model\.config\.text_config\.intermediate_size is 256/,
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('from the Qwen2-VL’s tower and LLM, 5 CPU steps on 16-frame videos reach a loss 5 from scratch do not', async () => {
  const cpu = await getBackend('cpu');
  /** The per-step losses of 5 steps of 2 videos from a pool of 4 (the needle v1 data and tokenizer, which the Qwen2-VL learned). */
  const run = async (fromQwen: boolean): Promise<number[]> => {
    const recipe = await recipeWith((j) => {
      if (!fromQwen) delete j.model.initFromQwen2VL;
      j.model.tokenizer = 'needle-v1';
      j.data = { train: { kind: 'needle', frames: [16], size: 112, tokenizer: 1, seed: 1000, count: 4 } };
      j.batch = { videos: 2 };
      j.schedule = { steps: 5, warmup: 0, minRatio: 1 };
      j.output = { dir: 'x', logEvery: 1, evalEvery: 1000, checkpointEvery: 1000 };
    });
    const dir = await mkdtemp(join(tmpdir(), 'longshot-tstar-init-'));
    const losses: number[] = [];
    try {
      await train({
        recipe: { ...recipe, output: { ...recipe.output, dir } },
        backend: cpu,
        engine: autogradEngine,
        onStep: (s) => losses.push(s.loss),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return losses;
  };
  const qwen = await run(true);
  const scratch = await run(false);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
  // Both runs see the same videos in the same order. At seed 0: best 0.06 against 1.4, mean 1.3 against 3.0.
  assert.ok(
    Math.min(...qwen) < Math.min(...scratch) / 4,
    `best loss from the Qwen2-VL ${Math.min(...qwen)}, from scratch ${Math.min(...scratch)}`,
  );
  assert.ok(mean(qwen) < mean(scratch) / 1.5, `mean loss ${mean(qwen)} against ${mean(scratch)}`);
});
