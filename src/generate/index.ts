export { seededUniform } from '../util/random.js';
export {
  type GeneratedToken,
  type GenerateOptions,
  generate,
  generateAll,
  optionsFromGenerationConfig,
} from './generate.js';
export type { CausalLM, TextStream } from './types.js';
