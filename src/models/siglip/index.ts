export {
  parseSiglipVisionConfig,
  patchGrid,
  type SiglipLayout,
  type SiglipVisionConfig,
  so400m,
} from './config.js';
export { resolveBlock, SiglipVision, siglipLayoutOf, siglipSpecs, siglipUnused } from './model.js';
export { siglipPixels, siglipPixelsOn } from './preprocess.js';
