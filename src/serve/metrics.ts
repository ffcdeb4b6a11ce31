/**
 * `/metrics` in the Prometheus text exposition format (version 0.0.4): requests running and queued, the
 * decode batch, tokens and tokens/s, time to first token as a histogram, the memory ledger admission reads
 * (ledger.ts), the videos being encoded and their progress, and the device's memory.
 */
import type { VideoProgress } from '../facade/types.js';
import { decodeTotals } from '../generate/batch.js';
import type { MemoryStats } from '../runtime/backend.js';
import type { LedgerSnapshot } from './ledger.js';

/** Upper bounds (seconds) of the time-to-first-token histogram's buckets. */
const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Window of the tokens/s gauge. */
const RATE_WINDOW_MS = 10_000;

export type Outcome = 'ok' | 'error' | 'rejected';

export interface MetricsSnapshot {
  running: number;
  queued: number;
  ledger: LedgerSnapshot;
  videoCache: { entries: number; bytes: number };
  memory: MemoryStats | null;
  /** Frames decoded and encoded, and sampled, of each video being encoded now. */
  encodes: readonly EncodeProgress[];
}

export interface EncodeProgress {
  done: number;
  total: number;
}

export class ServerMetrics {
  readonly #ttft = new Array<number>(TTFT_BUCKETS.length).fill(0);
  #ttftCount = 0;
  #ttftSum = 0;
  #completionTokens = 0;
  readonly #requests: Record<Outcome, number> = { ok: 0, error: 0, rejected: 0 };
  /** (time, decoded tokens) samples for the rate gauge. */
  readonly #samples: [number, number][] = [];
  readonly #encodes = new Set<EncodeProgress>();

  /** The videos being encoded now (`encoding` tracks them). */
  get encodes(): EncodeProgress[] {
    return [...this.#encodes];
  }

  /** A progress that counts an encode in the gauges while it runs, and passes every call on to `outer`. */
  encoding(outer?: VideoProgress): VideoProgress {
    const e: EncodeProgress = { done: 0, total: 0 };
    return {
      start: (frames) => {
        e.total = frames;
        this.#encodes.add(e);
        outer?.start?.(frames);
      },
      frames: (done, tokens) => {
        e.done = done;
        outer?.frames?.(done, tokens);
      },
      finish: () => {
        this.#encodes.delete(e);
        outer?.finish?.();
      },
    };
  }

  firstToken(seconds: number): void {
    this.#ttftCount++;
    this.#ttftSum += seconds;
    TTFT_BUCKETS.forEach((le, i) => {
      if (seconds <= le) this.#ttft[i]++;
    });
  }

  finished(outcome: Outcome, completionTokens = 0): void {
    this.#requests[outcome]++;
    this.#completionTokens += completionTokens;
  }

  /** Decoded tokens per second over the last RATE_WINDOW_MS (sampled at each scrape and request end). */
  tokensPerSecond(now = Date.now()): number {
    this.#samples.push([now, decodeTotals.tokens]);
    while (this.#samples.length > 2 && now - this.#samples[1][0] >= RATE_WINDOW_MS) this.#samples.shift();
    const [t0, n0] = this.#samples[0];
    return now > t0 ? ((decodeTotals.tokens - n0) * 1000) / (now - t0) : 0;
  }

  render(s: MetricsSnapshot): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, rows: [string, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) out.push(`${name}${labels} ${fmt(v)}`);
    };
    metric('longshot_requests_running', 'gauge', 'Requests admitted and running on the model.', [
      ['', s.running],
    ]);
    metric('longshot_requests_queued', 'gauge', 'Requests waiting for admission.', [['', s.queued]]);
    metric(
      'longshot_requests_total',
      'counter',
      'Chat completion requests ended, by outcome (rejected: 413/429/503 at admission).',
      Object.entries(this.#requests).map(([k, v]) => [`{outcome="${k}"}`, v]),
    );
    metric('longshot_decode_batch_size', 'gauge', 'Generations decoding together now.', [
      ['', decodeTotals.members],
    ]);
    metric('longshot_decode_steps_total', 'counter', 'Batched decode steps run.', [['', decodeTotals.steps]]);
    metric('longshot_decode_tokens_total', 'counter', 'Tokens produced by decode steps.', [
      ['', decodeTotals.tokens],
    ]);
    metric('longshot_completion_tokens_total', 'counter', 'Completion tokens of finished requests.', [
      ['', this.#completionTokens],
    ]);
    metric(
      'longshot_decode_tokens_per_second',
      'gauge',
      `Decoded tokens per second over the last ${RATE_WINDOW_MS / 1000} s.`,
      [['', this.tokensPerSecond()]],
    );
    out.push(
      '# HELP longshot_time_to_first_token_seconds Time from a request arriving to its first text.',
      '# TYPE longshot_time_to_first_token_seconds histogram',
      ...TTFT_BUCKETS.map(
        (le, i) => `longshot_time_to_first_token_seconds_bucket{le="${le}"} ${this.#ttft[i]}`,
      ),
      `longshot_time_to_first_token_seconds_bucket{le="+Inf"} ${this.#ttftCount}`,
      `longshot_time_to_first_token_seconds_sum ${fmt(this.#ttftSum)}`,
      `longshot_time_to_first_token_seconds_count ${this.#ttftCount}`,
    );
    const l = s.ledger;
    const gauge = (name: string, help: string, v: number | null) => {
      if (v !== null) metric(`longshot_memory_${name}_bytes`, 'gauge', help, [['', v]]);
    };
    gauge('budget', 'Device memory the server may use in all, the weights included.', l.budget_bytes);
    gauge('weights', 'Device memory held when the server started (the weights).', l.weights_bytes);
    gauge(
      'videos',
      'Device memory the encoded videos hold (kept, or still used by a request).',
      l.videos_bytes,
    );
    gauge(
      'decode_reserved',
      "Device memory reserved for the running requests' decode caches (estimates).",
      l.decode_reserved_bytes,
    );
    gauge(
      'question_reserved',
      "Device memory reserved for the running requests' questions over their videos beyond the decode caches (estimates: TimeViper's and TSTAR's prefill over every video token).",
      l.question_reserved_bytes,
    );
    gauge(
      'encode_reserved',
      'Device memory reserved for the encodes in progress (estimates).',
      l.encode_reserved_bytes,
    );
    gauge('free', 'The budget less what is held and reserved (what admission can give).', l.free_bytes);
    gauge(
      'unaccounted',
      "Live device memory beyond the ledger's sum (memory no estimate covers; admission counts it).",
      l.unaccounted_bytes,
    );
    const total = s.encodes.reduce((n, e) => n + e.total, 0);
    const done = s.encodes.reduce((n, e) => n + Math.min(e.done, e.total), 0);
    metric('longshot_video_encodes_running', 'gauge', 'Videos being decoded and encoded now.', [
      ['', s.encodes.length],
    ]);
    metric(
      'longshot_video_encode_frames',
      'gauge',
      'Frames of the videos being encoded now: encoded so far (done) and sampled (total).',
      [
        ['{kind="done"}', done],
        ['{kind="total"}', total],
      ],
    );
    metric(
      'longshot_video_encode_progress',
      'gauge',
      'Fraction of the frames of the videos being encoded now that are encoded (0 when none is).',
      [['', total ? done / total : 0]],
    );
    metric('longshot_video_cache_entries', 'gauge', 'Encoded videos kept for follow-up questions.', [
      ['', s.videoCache.entries],
    ]);
    metric('longshot_video_cache_bytes', 'gauge', 'Memory the kept encoded videos hold.', [
      ['', s.videoCache.bytes],
    ]);
    if (s.memory)
      metric(
        'longshot_device_memory_bytes',
        'gauge',
        "The model's device memory: held by live tensors (current), its peak, reserved by the allocator.",
        [
          ['{kind="current"}', s.memory.current],
          ['{kind="peak"}', s.memory.peak],
          ['{kind="reserved"}', s.memory.reserved],
        ],
      );
    return `${out.join('\n')}\n`;
  }
}

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toPrecision(6));
