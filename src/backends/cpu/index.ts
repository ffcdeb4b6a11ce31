import type { Backend, MemoryStats } from '../../runtime/backend.js';
import { registerBackend } from '../../runtime/device.js';
import type { RawArray } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { attention } from './attention.js';
import { affine, binary, cast, fill, unary } from './elementwise.js';
import { attentionBackward } from './grad-attention.js';
import { embeddingBackward } from './grad-embedding.js';
import { layerNormBackward, rmsNormBackward } from './grad-norm.js';
import { conv1dBackward, ssdScanBackward } from './grad-ssm.js';
import {
  argmax,
  embedding,
  embeddingBag,
  flip,
  permute,
  readSlice,
  reduce,
  scatterRows,
  writeSlice,
} from './layout.js';
import { crossEntropy, klTopK } from './loss.js';
import { matmul } from './matmul.js';
import { type CpuStorage, rawOf } from './memory.js';
import { layerNorm, rmsNorm, ropeTable, rotary, softmax } from './norm.js';
import { adamwSteps, sumSquares } from './optim.js';
import { sample } from './sample.js';
import { conv1d, mambaStepRows, ssdScan, ssmStep } from './ssm.js';

/** The reference backend: TypeScript over typed arrays, computing in f32 (and f64 where it is free). */
export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  #current = 0;
  #peak = 0;

  allocate(bytes: number): CpuStorage {
    // Round up so every dtype's typed-array view is aligned.
    const buf = new SharedArrayBuffer(Math.ceil(bytes / 8) * 8);
    this.#current += bytes;
    this.#peak = Math.max(this.#peak, this.#current);
    return { bytes, buf };
  }
  release(storage: CpuStorage): void {
    this.#current -= storage.bytes;
  }
  upload(dst: Tensor, src: RawArray): void {
    rawOf(dst).set(src);
  }
  async download(src: Tensor): Promise<RawArray> {
    return this.downloadSync(src);
  }
  downloadSync(src: Tensor): RawArray {
    return rawOf(src).slice();
  }
  memory(): MemoryStats {
    return { current: this.#current, peak: this.#peak, reserved: this.#current };
  }
  resetPeak(): void {
    this.#peak = this.#current;
  }
  async synchronize(): Promise<void> {}

  cast = cast;
  fill = fill;
  unary = unary;
  binary = binary;
  affine = affine;
  matmul = matmul;
  rmsNorm = rmsNorm;
  layerNorm = layerNorm;
  softmax = softmax;
  rotary = rotary;
  ropeTable = ropeTable;
  attention = attention;
  conv1d = conv1d;
  ssdScan = ssdScan;
  ssmStep = ssmStep;
  mambaStepRows = mambaStepRows;
  embedding = embedding;
  embeddingBag = embeddingBag;
  writeSlice = writeSlice;
  scatterRows = scatterRows;
  readSlice = readSlice;
  permute = permute;
  flip = flip;
  reduce = reduce;
  argmax = argmax;
  sample = sample;
  // backward kernels, losses and the optimizer step (grad-ops.ts)
  ssdScanBackward = ssdScanBackward;
  conv1dBackward = conv1dBackward;
  attentionBackward = attentionBackward;
  rmsNormBackward = rmsNormBackward;
  layerNormBackward = layerNormBackward;
  embeddingBackward = embeddingBackward;
  crossEntropy = crossEntropy;
  klTopK = klTopK;
  adamwSteps = adamwSteps;
  sumSquares = sumSquares;
}

let instance: CpuBackend | undefined;
export const cpuBackend = (): CpuBackend => {
  instance ??= new CpuBackend();
  return instance;
};

registerBackend('cpu', async () => cpuBackend());
