/** The batch scaling benchmark's bookkeeping (bench/scaling-metrics.ts): jobs of a phase and what spans say. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type PhaseMetrics,
  phaseMetrics,
  type Span,
  scalingEfficiency,
  scalingJobs,
} from '../../bench/scaling-metrics.js';

const span = (
  job: string,
  worker: string,
  start: number,
  end: number,
  answers: number,
  error = false,
): Span => ({
  job,
  worker,
  start,
  end,
  answers,
  error,
});

test('scalingJobs: ids of the phase, a video per job id, the questions and options', () => {
  const jobs = scalingJobs('n2', 3, 2, (id) => `/v/${id}.mp4`, { frames: 256, maxNewTokens: 32 });
  assert.deepEqual(
    jobs.map((j) => [j.id, j.video, j.frames, j.maxNewTokens, j.questions.length]),
    [
      ['n2-0000', '/v/n2-0000.mp4', 256, 32, 2],
      ['n2-0001', '/v/n2-0001.mp4', 256, 32, 2],
      ['n2-0002', '/v/n2-0002.mp4', 256, 32, 2],
    ],
  );
  assert.equal(new Set(jobs.flatMap((j) => j.questions)).size, 6);
});

test('phaseMetrics: whole videos, shares of videos, errors and queue wait over the window', () => {
  // Window 0–10 s, two workers. A done; B ends after the window; C failed; D never ended.
  const m = phaseMetrics(
    [
      span('A', 'w0', 0, 4000, 4),
      span('B', 'w0', 4000, 12_000, 4),
      span('C', 'w1', 1000, 6000, 0, true),
      span('D', 'w1', 6000, Infinity, 0),
    ],
    2,
    0,
    10_000,
  );
  assert.equal(m.elapsedS, 10);
  assert.equal(m.videos, 1);
  assert.equal(m.questions, 4);
  assert.equal(m.errors, 1);
  assert.equal(m.videosPerHour, 360);
  assert.equal(m.questionsPerHour, 1440);
  assert.equal(m.meanJobS, 4);
  // Shares: A 1, B 6/8, D 4 s over the 4 s mean (capped at 1) = 2.75 videos in 10 s.
  assert.ok(Math.abs(m.videoSharesPerHour - 990) < 1e-9);
  // Busy 4 + 6 + 5 + 4 = 19 of 20 worker-seconds.
  assert.ok(Math.abs(m.queueWaitShare - 0.05) < 1e-12);
});

test('phaseMetrics: a worker that took nothing waits the whole window', () => {
  const m = phaseMetrics([span('A', 'w0', 0, 10_000, 1)], 2, 0, 10_000);
  assert.equal(m.queueWaitShare, 0.5);
});

test('scalingEfficiency: against N times the one-worker phase', () => {
  const phase = (workers: number, videoSharesPerHour: number) =>
    ({ workers, videoSharesPerHour }) as PhaseMetrics;
  assert.deepEqual(scalingEfficiency([phase(1, 1000), phase(2, 1800), phase(4, 2000)]), [1, 0.9, 0.5]);
  assert.deepEqual(scalingEfficiency([phase(2, 1800)]), [undefined]);
});
