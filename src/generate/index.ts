export {
  type GeneratedToken,
  type GenerateOptions,
  generate,
  generateAll,
  optionsFromGenerationConfig,
} from './generate.js';
export { seededUniform } from './rng.js';
export type { CausalLM, TextStream } from './types.js';
