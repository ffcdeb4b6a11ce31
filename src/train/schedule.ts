/**
 * The learning rate at each optimizer step: linear warm-up, then a cosine decay to `minRatio` of the peak
 * (tools/reference/train_needle.py: lr · min(1, step/warmup) · (0.95 · ½(1 + cos π·step/steps) + 0.05)).
 */
export interface Schedule {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up (0: none). */
  warmup: number;
  /** Steps of the whole run (the cosine reaches its floor there). */
  steps: number;
  /** The floor of the decay as a fraction of the peak (train_needle.py: 0.05). */
  minRatio: number;
}

/**
 * Learning rate of optimizer step `step` (1-based, as the reference counts). `timeProgress`: the fraction of
 * a time budget spent, when the decay runs over time too (whichever is further along, as train_needle.py).
 */
export function learningRate(s: Schedule, step: number, timeProgress = 0): number {
  const warm = s.warmup > 0 ? Math.min(1, step / s.warmup) : 1;
  const progress = Math.min(1, Math.max(0, step / s.steps, timeProgress));
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
  return s.lr * warm * (cosine * (1 - s.minRatio) + s.minRatio);
}
