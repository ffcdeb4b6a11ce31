/**
 * Backend calls (GPU kernel launches) per decoded token of the tiny models: a Nemotron-H (the nano-like
 * fixture, pattern M-M*-M-MM-), the shipped tiny Vamba and Qwen2-VL (models/). Each prefills a short prompt,
 * steps once to warm up, then counts one `session.step` (what `generate` runs per token for one sequence),
 * in total, per op and per layer kind. The CPU backend has the GPU's optional fused ops (`mambaStepRows`),
 * so its counts are the GPU's; `--device cuda` counts on the GPU itself (bf16, as models load there).
 *
 *   npx tsx bench/decode_calls.ts [--device cpu|cuda] [--json FILE]
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { NemotronHForCausalLM } from '../src/models/nemotron_h/model.js';
import { Qwen2VL } from '../src/models/qwen2vl/model.js';
import { Vamba } from '../src/models/vamba/model.js';
import type { Backend, DeviceName } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { type CallPart, countCalls } from './backend-calls.js';

export const NEMOTRON_DIR = 'test/fixtures/nemotron_h/nano-like';
export const VAMBA_DIR = 'models/needle-vamba-tiny';
export const QWEN2VL_DIR = 'models/needle-qwen2vl-tiny';

export interface DecodeCalls {
  model: string;
  /** Kernel calls of one decode step. */
  total: number;
  /** Per kernel (and `unary:op` / `binary:op`). */
  ops: Record<string, number>;
  /** Per layer of each kind (calls inside the layers of that kind / their number). */
  perLayer: Record<string, number>;
  /** Calls outside the layers (embedding, final norm, lm_head…). */
  outside: number;
  /** Per layer kind (summed over its layers) and `outside`: the calls per kernel. */
  opsByPart: Record<string, Record<string, number>>;
  /** The step's logits [1, vocab], f32. */
  logits: Float32Array;
}

interface Stepper {
  step(token: number): Tensor;
}

/** Counts one step of `session` (after one warm-up step), attributing calls to `layers`' `method` by kind. */
async function measure(
  model: string,
  backend: Backend,
  session: Stepper,
  layers: readonly { kind: string; layer: object }[],
  tokens: readonly [number, number],
  method = 'forward',
): Promise<DecodeCalls> {
  session.step(tokens[0]).dispose();
  const parts: CallPart[] = layers.map((l) => ({ label: l.kind, target: l.layer, method }));
  const r = await countCalls(backend, () => session.step(tokens[1]), parts);
  const logits = Float32Array.from(await r.result.data());
  r.result.dispose();
  const perLayer: Record<string, number> = {};
  let inLayers = 0;
  for (const [kind, n] of Object.entries(r.byPart)) {
    const count = layers.filter((l) => l.kind === kind).length;
    perLayer[kind] = n / count;
    inLayers += n;
  }
  const { '': outsideOps, ...inside } = r.opsByPart;
  const opsByPart = { ...inside, outside: outsideOps ?? {} };
  return { model, total: r.total, ops: r.counts, perLayer, outside: r.total - inLayers, opsByPart, logits };
}

const NEMOTRON_KINDS: Record<string, string> = { M: 'mamba2', '*': 'attention', '-': 'mlp' };

export async function nemotronHCalls(backend: Backend = cpuBackend()): Promise<DecodeCalls> {
  using model = await NemotronHForCausalLM.load(NEMOTRON_DIR, { backend });
  using session = model.session({ capacity: 16 });
  session.prefill([301, 5, 17, 9, 40, 3, 11]).dispose();
  const layers = model.backbone.layers.map((b) => ({ kind: NEMOTRON_KINDS[b.kind], layer: b }));
  return measure('nemotron-h (M-M*-M-MM-)', backend, session, layers, [12, 7], 'forwardResidual');
}

export async function qwen2vlCalls(backend: Backend = cpuBackend()): Promise<DecodeCalls> {
  using model = await Qwen2VL.load(QWEN2VL_DIR, { backend });
  using session = model.session({ capacity: 16 });
  session.prefill({ inputIds: [0, 20, 31, 42, 53, 11] }).dispose();
  const layers = model.model.layers.map((layer) => ({ kind: 'qwen2', layer }));
  return measure('qwen2-vl (4 layers)', backend, session, layers, [12, 7]);
}

export async function vambaCalls(backend: Backend = cpuBackend()): Promise<DecodeCalls> {
  using model = await Vamba.load(VAMBA_DIR, { backend });
  // One temporal group of 4×4 patches (2×2 merged video tokens): the video only sets the cross-attention K/V.
  const grid = [1, 4, 4] as const;
  const pixels = Float32Array.from({ length: 16 * 1176 }, (_, i) => Math.sin(i * 0.37));
  using video = model.encodeVideo(pixels, [...grid]);
  using session = model.session(video, { capacity: 16 });
  session.prefill([0, 20, 31, 42, 53, 11]).dispose();
  const layers = model.lm.layers.map((layer) => ({ kind: 'vamba', layer }));
  return measure('vamba (4 layers)', backend, session, layers, [12, 7], 'forwardResidual');
}

function report(r: DecodeCalls): string {
  const per = Object.entries(r.perLayer)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const ops = Object.entries(r.opsByPart).map(
    ([part, o]) =>
      `  ${part}: ${Object.entries(o)
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
  );
  return [
    `${r.model}: ${r.total} calls per token (per layer: ${per}; outside the layers ${r.outside})`,
    ...ops,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { json: { type: 'string' }, device: { type: 'string', default: 'cpu' } },
  });
  if (values.device === 'cuda') await import('../src/backends/cuda/index.js');
  const backend = await getBackend(values.device as DeviceName);
  const all = [await nemotronHCalls(backend), await qwen2vlCalls(backend), await vambaCalls(backend)];
  for (const r of all) console.log(report(r));
  if (values.json)
    await writeFile(
      values.json,
      `${JSON.stringify(
        all.map(({ logits: _, ...r }) => r),
        null,
        2,
      )}\n`,
    );
}
