/** Views and layout copies: reshape, narrow, cast, permute, slice, concat, flip, and the in-place writeSlice. */
import * as ops from '../../runtime/ops.js';
import { registerRule } from '../rule.js';
import { padInto } from './util.js';

registerRule('reshape', { backward: ({ shapes }, [g]) => [g!.reshape(shapes[0]!)] });

registerRule<{ start: number }>('narrow', {
  backward: ({ shapes, attrs }, [g]) => [padInto(g!, shapes[0]!, 0, attrs.start)],
});

registerRule<{ axis: number; start: number }>('slice', {
  backward: ({ shapes, attrs }, [g]) => [padInto(g!, shapes[0]!, attrs.axis, attrs.start)],
});

// Gradients are f32 whatever the forward's dtype, so a cast passes them through.
registerRule('cast', { backward: (_, [g]) => [g] });

registerRule<{ perm: number[] }>('permute', {
  backward: ({ attrs }, [g]) => {
    const inverse: number[] = [];
    attrs.perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [ops.permute(g!, inverse)];
  },
});

registerRule<{ axis: number }>('flip', { backward: ({ attrs }, [g]) => [ops.flip(g!, attrs.axis)] });

registerRule<{ axis: number }>('concat', {
  backward: ({ shapes, attrs, needs }, [g]) => {
    let at = 0;
    return shapes.map((s, i) => {
      const n = s![attrs.axis];
      at += n;
      return needs[i] ? ops.slice(g!, attrs.axis, at - n, at) : null;
    });
  },
});

/** dst[…, start:start+n, …] = x in place: x gets that slice of the gradient, the old dst the rest. */
registerRule<{ axis: number; start: number }>('writeSlice', {
  backward: ({ shapes, attrs, needs }, [g]) => {
    const { axis, start } = attrs;
    const n = shapes[1]![axis];
    const gx = needs[1] ? ops.slice(g!, axis, start, start + n) : null;
    let gDst = null;
    if (needs[0]) {
      gDst = ops.clone(g!);
      ops.writeSlice(gDst, ops.zeros(g!.backend, shapes[1]!), axis, start);
    }
    return [gDst, gx];
  },
});

/** A view of a leaf's elements [start, start + size) made before recording (see Tape): the leaf gets them. */
registerRule<{ start: number }>('leafView', {
  backward: ({ shapes, attrs }, [g]) => {
    const size = shapes[0]!.reduce((a, b) => a * b, 1);
    return [padInto(g!.reshape([1, -1]), [1, size], 1, attrs.start).reshape(shapes[0]!)];
  },
});

/** A tensor made of several leaves end to end (see Tape): each leaf gets its range of the gradient. */
registerRule('leafSpan', {
  backward: ({ shapes }, [g]) => {
    const flat = g!.reshape([1, -1]);
    let at = 0;
    return shapes.map((shape) => {
      const size = shape!.reduce((a, b) => a * b, 1);
      at += size;
      return ops.slice(flat, 1, at - size, at).reshape(shape!);
    });
  },
});

/**
 * A view overlapping the destination of an in-place write ([view, dst] → the view after it): elements
 * [viewStart, viewStart + n) of the view are elements [dstStart, …) of the new dst, the rest is the old view.
 */
registerRule<{ viewStart: number; dstStart: number; n: number }>('aliasWrite', {
  backward: ({ shapes, attrs, needs }, [g]) => {
    const { viewStart, dstStart, n } = attrs;
    const flat = g!.reshape([1, -1]);
    let gView = null;
    if (needs[0]) {
      gView = ops.clone(flat);
      ops.writeSlice(gView, ops.zeros(g!.backend, [1, n]), 1, viewStart);
      gView = gView.reshape(shapes[0]!);
    }
    const dstSize = shapes[1]!.reduce((a, b) => a * b, 1);
    const gDst = needs[1]
      ? padInto(ops.slice(flat, 1, viewStart, viewStart + n), [1, dstSize], 1, dstStart).reshape(shapes[1]!)
      : null;
    return [gView, gDst];
  },
});
