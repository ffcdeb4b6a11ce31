/**
 * Vamba's own prompt format. Vamba does not use the tokenizer's chat template: its inference code builds
 * the prompt with `conv_qwen2` and replaces the `<video>` placeholder by `<|vision_start|><|vision_end|>`,
 * with no `<|video_pad|>` tokens, because the video reaches the model through cross-attention, not as
 * tokens in the sequence (research/vamba.md §2.2, §4.4).
 */
export const VAMBA_SYSTEM_PROMPT = 'You are a helpful assistant.';

/** Marks where the video was in the prompt; the video itself takes no text positions. */
export const VAMBA_VISION_MARKER = '<|vision_start|><|vision_end|>';

export interface VambaPromptOptions {
  system?: string;
}

/** The exact string Vamba's official inference tokenises for one video and one question. */
export function vambaPrompt(question: string, opts: VambaPromptOptions = {}): string {
  const system = opts.system ?? VAMBA_SYSTEM_PROMPT;
  return (
    `<|im_start|>system\n${system}<|im_end|>\n` +
    `<|im_start|>user\n${VAMBA_VISION_MARKER}${question}<|im_end|>\n` +
    '<|im_start|>assistant\n'
  );
}
