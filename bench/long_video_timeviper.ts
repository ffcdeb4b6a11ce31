/**
 * The TimeViper series of the long-video benchmark (bench/long_video.ts runs it as a child): TimeViper-9B's
 * architecture (timm SigLIP so400m, ToMe to 16 tokens per frame, the projector, Nemotron-Nano-9B-v2) with random
 * bf16 weights, with and without TransV (`uni_7_0.5-attn_39_0.1`, CrossAttention). The vision path (SigLIP →
 * ToMe → projector, 384×384 frames in clips of 256) is timed once on VISION_FRAMES frames and scaled to each
 * size (per frame it does not depend on the video's length); the LLM prefill of the whole prompt (12 text
 * tokens, 16 per frame, a 24-token question) is timed at every size, with the device's peak memory.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OutOfMemoryError } from '../src/errors.js';
import { RandomWeights } from '../src/io/random-weights.js';
import { so400m } from '../src/models/siglip/config.js';
import { parseTimeViperConfig } from '../src/models/timeviper/config.js';
import { TimeViperModel } from '../src/models/timeviper/model.js';
import { stageCounts } from '../src/models/timeviper/pdrop.js';
import { timeViperMemory } from '../src/models/timeviper/size.js';
import { ALPHA, loadTimeViperParams, timeViperSpecs } from '../src/models/timeviper/weights.js';
import { countParams } from '../src/nn/params.js';
import type { Backend } from '../src/runtime/backend.js';
import { BYTES_PER_ELEMENT } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import { tidy } from '../src/runtime/scope.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { Random } from '../src/util/random.js';
import type { Row, Series } from './long_video.js';

export const TRANSV = 'uni_7_0.5-attn_39_0.1';
const ROOT = join(import.meta.dirname, '..');
const GiB = 2 ** 30;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function config(transv: boolean, tiny: boolean) {
  const base = tiny
    ? JSON.parse(readFileSync(join(ROOT, 'test/fixtures/timeviper/transv/config.json'), 'utf8'))
    : {
        model_type: 'timeviper',
        llm_config: JSON.parse(
          readFileSync(join(ROOT, 'test/fixtures/configs/nemotron-nano-9b-v2/config.json'), 'utf8'),
        ),
        vision_config: so400m('timm'),
        vision_layout: 'timm',
        vision_feature_block: -2,
        num_compressed_tokens: 16,
        image_token_index: 131072,
        pdrop_type: TRANSV,
      };
  return parseTimeViperConfig({
    ...base,
    use_pdrop: transv,
    merge_module: transv ? 'CrossAttention' : 'no_merge',
  });
}

/** With drop stages: the vision tokens each stage leaves (what the later layers hold). */
function afterStages(c: ReturnType<typeof config>, tokens: number): string {
  const left = c.stages.map((s, i) => `${stageCounts(c.stages, i, tokens).keep} from block ${s.layer}`);
  return left.length ? `; vision tokens kept: ${left.join(', ')}` : '';
}

export async function runTimeViperSeries(
  backend: Backend,
  o: { transv: boolean; tiny: boolean; frames: readonly number[] },
): Promise<Series> {
  const dtype = o.tiny ? 'f32' : 'bf16';
  const c = config(o.transv, o.tiny);
  const t0 = performance.now();
  // α = 0.5 (an open gate), so that the transfer's work is real; the rest is RandomWeights' default.
  const special = (name: string, shape: readonly number[]) =>
    name === ALPHA ? new Float32Array(shape[0]).fill(0.5) : null;
  const source = new RandomWeights(timeViperSpecs(c), { seed: 1, special });
  const model = await TimeViperModel.fromParams(
    c,
    await loadTimeViperParams(source, c, backend, dtype, 'random'),
  );
  source[Symbol.dispose]();
  await backend.synchronize();
  const setupS = (performance.now() - t0) / 1000;
  const device = 'device' in backend ? (backend as { device: { name: string } }).device.name : 'cpu';
  const rng = new Random(3);
  const side = c.vision.image_size;
  const visionFrames = o.tiny ? 4 : 256;
  const pixels = ops.tensor(
    backend,
    Float32Array.from({ length: visionFrames * 3 * side * side }, () => rng.uniform(-1, 1)),
    [visionFrames, 3, side, side],
  );
  // Twice: the first run warms plan caches and the allocator.
  (await model.encode(pixels)).dispose();
  await backend.synchronize();
  const tv = performance.now();
  const pool = await model.encode(pixels);
  await backend.synchronize();
  const visionPerFrame = (performance.now() - tv) / 1000 / visionFrames;
  pixels.dispose();
  const weightBytes = countParams(timeViperSpecs(c)) * BYTES_PER_ELEMENT[dtype];
  const text = (n: number) => Array.from({ length: n }, () => rng.int(1, Math.floor(c.llm.vocab_size * 0.9)));
  const rows: Row[] = [];
  try {
    for (const frames of o.frames) {
      const videoTokens = frames * c.tokensPerFrame;
      const m = timeViperMemory(c, { frames, textTokens: 36, newTokens: 8, dtype, drops: o.transv });
      const row: Row = {
        frames,
        videoTokens,
        status: 'ok',
        note: `vision timed on ${visionFrames} frames, scaled${afterStages(c, videoTokens)}`,
        // The weights, the pooled frames' tokens the prompt repeats, and the prefill (models/timeviper/size.ts).
        estimateGiB: r3((weightBytes + pool.bytes + m.prefillBytes) / GiB),
      };
      rows.push(row);
      let x: Tensor | null = null;
      let caches: ReturnType<typeof model.lm.newCaches> = [];
      try {
        x = tidy(() => {
          const flat = pool.reshape([-1, c.llm.hidden_size]);
          const parts = [model.lm.embed(text(12))];
          for (let left = videoTokens; left > 0; left -= flat.shape[0])
            parts.push(left >= flat.shape[0] ? flat : flat.narrow(0, left));
          parts.push(model.lm.embed(text(24)));
          return ops.concat(parts, 0);
        });
        caches = model.lm.newCaches(x.shape[0] + 8);
        await backend.synchronize();
        backend.resetPeak();
        const t1 = performance.now();
        const out = await model.lm.forward(x, { start: 12, count: videoTokens }, caches);
        await backend.synchronize();
        row.llmS = r3((performance.now() - t1) / 1000);
        out.logits.dispose();
        row.visionS = r3(visionPerFrame * frames);
        row.prefillS = r3(row.visionS + row.llmS);
        const mem = backend.memory();
        Object.assign(row, { peakGiB: r3(mem.peak / GiB), reservedGiB: r3(mem.reserved / GiB) });
      } catch (e) {
        if (!(e instanceof OutOfMemoryError)) throw e;
        Object.assign(row, { status: 'oom', note: e.message });
      } finally {
        x?.dispose();
        for (const k of caches) k[Symbol.dispose]();
      }
      console.error(`timeviper${o.transv ? '-transv' : ''} ${JSON.stringify(row)}`);
    }
  } finally {
    pool.dispose();
    model[Symbol.dispose]();
  }
  const name = `longshot-TimeViper${o.transv ? ` + TransV (${c.pdropType})` : ''}`;
  return { name, device, setupS: r3(setupS), rows };
}
