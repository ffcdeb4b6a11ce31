/**
 * The batch scaling benchmark's bookkeeping (bench/batch_scaling.ts): the jobs of one phase, and what a phase's
 * job spans say about throughput and about the time workers spent waiting on the queue.
 */
import type { JobSpec } from '../src/worker/jobs.js';

/** One job as the benchmark saw it run: BullMQ's `active` to `completed`/`failed` events, in ms. */
export interface Span {
  job: string;
  worker: string;
  start: number;
  /** Infinity while it runs. */
  end: number;
  answers: number;
  error: boolean;
}

export interface PhaseMetrics {
  workers: number;
  elapsedS: number;
  videos: number;
  questions: number;
  errors: number;
  videosPerHour: number;
  /**
   * Videos/hour counting the share of each job done inside the window (its time inside over its whole time;
   * one with no end yet, over the mean job time): less coarse than whole videos when a window holds few jobs.
   */
  videoSharesPerHour: number;
  questionsPerHour: number;
  /** Mean seconds from taking a job to its result (decode, encode, answers). */
  meanJobS: number;
  /** Share of the workers' time in the window with no job in hand (taking one, or nothing left to take). */
  queueWaitShare: number;
}

/** `count` jobs of phase `phase` with `questions` each, about the video `videoFor` gives each job id. */
export function scalingJobs(
  phase: string,
  count: number,
  questions: number,
  videoFor: (id: string) => string,
  opts: Pick<JobSpec, 'frames' | 'maxNewTokens'>,
): JobSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const id = `${phase}-${String(i).padStart(4, '0')}`;
    return {
      id,
      video: videoFor(id),
      questions: Array.from(
        { length: questions },
        (_, q) => `Question ${q + 1} about video ${i}: what happens?`,
      ),
      ...opts,
    };
  });
}

/** Throughput and queue wait of `workers` workers over [t0, t1] (ms), from the spans of the jobs they took. */
export function phaseMetrics(spans: readonly Span[], workers: number, t0: number, t1: number): PhaseMetrics {
  const elapsedS = (t1 - t0) / 1000;
  const done = spans.filter((s) => s.end <= t1);
  const ok = done.filter((s) => !s.error);
  const questions = ok.reduce((a, s) => a + s.answers, 0);
  const perHour = (n: number) => (elapsedS > 0 ? (n / elapsedS) * 3600 : 0);
  const meanJobMs = ok.length ? ok.reduce((a, s) => a + s.end - s.start, 0) / ok.length : 0;
  const inside = (s: Span) => Math.max(0, Math.min(s.end, t1) - Math.max(s.start, t0));
  const busyMs = spans.reduce((a, s) => a + inside(s), 0);
  const shares = spans
    .filter((s) => !s.error)
    .reduce((a, s) => {
      const length = s.end < Infinity ? s.end - s.start : meanJobMs;
      return a + (length > 0 ? Math.min(1, inside(s) / length) : 0);
    }, 0);
  return {
    workers,
    elapsedS,
    videos: ok.length,
    questions,
    errors: done.length - ok.length,
    videosPerHour: perHour(ok.length),
    videoSharesPerHour: perHour(shares),
    questionsPerHour: perHour(questions),
    meanJobS: meanJobMs / 1000,
    queueWaitShare: workers > 0 && elapsedS > 0 ? 1 - busyMs / (workers * (t1 - t0)) : 0,
  };
}

/** videoSharesPerHour against N× the one-worker phase's (undefined without a one-worker phase). */
export function scalingEfficiency(phases: readonly PhaseMetrics[]): Array<number | undefined> {
  const one = phases.find((p) => p.workers === 1);
  return phases.map((p) =>
    one && one.videoSharesPerHour > 0
      ? p.videoSharesPerHour / (p.workers * one.videoSharesPerHour)
      : undefined,
  );
}
