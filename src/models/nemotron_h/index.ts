export { NemotronHBlock } from './block.js';
export {
  type BlockChar,
  layerCensus,
  type NemotronHConfig,
  parseNemotronHConfig,
  readNemotronHConfig,
} from './config.js';
export {
  NemotronHForCausalLM,
  type NemotronHLoadOptions,
  NemotronHModel,
  NemotronHSession,
} from './model.js';
export { nemotronHStateBytes } from './size.js';
export { loadNemotronHParams, nemotronHParamCount, nemotronHSpecs } from './weights.js';
