/** The kernels worker threads can run, by name (the same functions run on the main thread). */
import { attentionTask } from './attention.js';
import { gemmTask } from './matmul.js';
import { ssdTask } from './ssm.js';

export const TASKS = {
  gemm: gemmTask,
  attention: attentionTask,
  ssd: ssdTask,
} as const;

export type TaskName = keyof typeof TASKS;
