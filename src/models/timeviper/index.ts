export { parseTimeViperConfig, readTimeViperConfig, type TimeViperConfig } from './config.js';
export { TimeViperLM, type VisionSpan } from './language-model.js';
export { CLIP_FRAMES, type TimeViperInput, TimeViperModel, TimeViperSession } from './model.js';
export { type DropStage, parsePdropType, uniformKeep } from './pdrop.js';
export { ANSWER_PROMPT, groundingMessage, mcqMessage, nanoBasePrompt } from './prompt.js';
export { loadTimeViperParams, timeViperSpecs } from './weights.js';
