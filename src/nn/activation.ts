import { ModelError } from '../errors.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';

export type Activation = (x: Tensor) => Tensor;

/** Hugging Face `hidden_act` names (ACT2FN) mapped to runtime ops. */
const ACTIVATIONS: Record<string, Activation> = {
  silu: ops.silu,
  swish: ops.silu,
  gelu: ops.gelu,
  gelu_new: ops.geluTanh,
  gelu_pytorch_tanh: ops.geluTanh,
  quick_gelu: ops.quickGelu,
  relu2: ops.relu2,
  sigmoid: ops.sigmoid,
};

export function activation(name: string): Activation {
  const f = ACTIVATIONS[name];
  if (!f)
    throw new ModelError(
      `unsupported activation "${name}" (supported: ${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  return f;
}
