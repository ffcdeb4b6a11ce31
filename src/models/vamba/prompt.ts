/**
 * Vamba's own prompt format. Vamba does not use the tokenizer's chat template: its inference code builds
 * the prompt with `conv_qwen2` and replaces the `<video>` placeholder by `<|vision_start|><|vision_end|>`,
 * with no `<|video_pad|>` tokens, because the video reaches the model through cross-attention, not as
 * tokens in the sequence (research/vamba.md §2.2, §4.4).
 */
import type { ChatTurn } from '../../facade/types.js';

export const VAMBA_SYSTEM_PROMPT = 'You are a helpful assistant.';

/** Marks where the video was in the prompt; the video itself takes no text positions. */
export const VAMBA_VISION_MARKER = '<|vision_start|><|vision_end|>';

/**
 * The prompt Vamba's inference builds (one video, one question: the exact string its official inference
 * tokenises), extended to several turns in the same conv_qwen2 format; the marker goes before the first
 * user turn.
 */
export function vambaPrompt(turns: readonly ChatTurn[], withVideo = true): string {
  const system = turns.find((t) => t.role === 'system')?.content ?? VAMBA_SYSTEM_PROMPT;
  let marked = !withVideo;
  let text = `<|im_start|>system\n${system}<|im_end|>\n`;
  for (const t of turns) {
    if (t.role === 'system') continue;
    const marker = !marked && t.role === 'user' ? VAMBA_VISION_MARKER : '';
    if (marker) marked = true;
    text += `<|im_start|>${t.role}\n${marker}${t.content}<|im_end|>\n`;
  }
  return `${text}<|im_start|>assistant\n`;
}
