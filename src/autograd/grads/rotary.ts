/**
 * Rotate-half rotary: out = x·cos + rot(x)·sin with rot(x) = [−x₂, x₁] per head. rot is antisymmetric and the
 * tables repeat each angle in both halves, so the adjoint is the same rotation with −sin.
 */
import * as ops from '../../runtime/ops.js';
import { AutogradError, registerRule } from '../rule.js';

registerRule('rotary', {
  save: () => ({ inputs: [1, 2] }),
  backward: ({ inputs, needs }, [g]) => {
    if (needs[1] || needs[2])
      throw new AutogradError(
        'rotary: the cos/sin tables get no gradient (they are computed from positions)',
      );
    const [, cos, sin] = inputs;
    return [ops.rotary(g!, cos!, ops.affine(sin!, -1))];
  },
});
