/** The kernels worker threads can run, by name (the same functions run on the main thread). */
import { attentionTask } from './attention.js';
import { attentionBackwardTask } from './grad-attention.js';
import { normBackwardTask } from './grad-norm.js';
import { conv1dBackwardTask, ssdBackwardTask } from './grad-ssm.js';
import { gemmTask } from './matmul.js';
import { ssdTask } from './ssm.js';

export const TASKS = {
  gemm: gemmTask,
  attention: attentionTask,
  attentionBackward: attentionBackwardTask,
  ssd: ssdTask,
  ssdBackward: ssdBackwardTask,
  conv1dBackward: conv1dBackwardTask,
  normBackward: normBackwardTask,
} as const;

export type TaskName = keyof typeof TASKS;
