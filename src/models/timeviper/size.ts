/**
 * TimeViper's memory: the encoded video is its projected tokens (16 per frame); a question's prefill holds the
 * LLM's K/V for the tokens each attention block sees (fewer after a drop stage) and the fixed Mamba-2 states;
 * the working set is the larger of a vision clip (up to 256 frames of 729 patch tokens through one SigLIP block)
 * and one LLM block over the whole prompt.
 */
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import { nemotronHStateBytes } from '../nemotron_h/size.js';
import { patchGrid } from '../siglip/config.js';
import type { TimeViperConfig } from './config.js';
import { CLIP_FRAMES } from './model.js';
import { stageCounts } from './pdrop.js';

/** Tokens each block sees in a prefill of `text` text tokens and `frames` frames, stage by stage. */
export function tokensPerBlock(c: TimeViperConfig, frames: number, text: number): number[] {
  const vision = frames * c.tokensPerFrame;
  const out: number[] = [];
  let stage = 0;
  for (let i = 0; i < c.llm.hybrid_override_pattern.length; i++) {
    while (stage < c.stages.length && c.stages[stage].layer <= i) stage++;
    const kept = stage ? stageCounts(c.stages, stage - 1, vision).keep : vision;
    out.push(text + kept);
  }
  return out;
}

export function timeViperMemory(
  c: TimeViperConfig,
  frames: number,
  text: number,
  dtype: DType,
): { videoState: number; kv: number; working: number } {
  const bytes = BYTES_PER_ELEMENT[dtype];
  const h = c.llm.hidden_size;
  const blocks = tokensPerBlock(c, frames, text);
  const perAttentionToken = 2 * c.llm.num_key_value_heads * c.llm.head_dim * bytes;
  const kv = [...c.llm.hybrid_override_pattern].reduce(
    (n, ch, i) => (ch === '*' ? n + blocks[i] * perAttentionToken : n),
    0,
  );
  const mamba = nemotronHStateBytes(c.llm, 0, dtype).mamba;
  const clip = Math.min(frames, CLIP_FRAMES) * patchGrid(c.vision).tokens;
  const vision = clip * (4 * c.vision.hidden_size + c.vision.intermediate_size) * bytes;
  const m = c.llm;
  const widest = Math.max(
    2 * m.mamba_num_heads * m.mamba_head_dim + 2 * m.n_groups * m.ssm_state_size + m.mamba_num_heads,
    m.intermediate_size,
    (m.num_attention_heads + 2 * m.num_key_value_heads) * m.head_dim,
  );
  const llm = blocks[0] * (2 * h + widest) * bytes;
  return {
    videoState: frames * c.tokensPerFrame * h * bytes,
    kv: kv + mamba,
    working: Math.max(vision, llm),
  };
}
