/** A seeded PRNG (mulberry32): reproducible data generation and sampling draws from one seed. */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The whole state: `new Random(r.state)` continues exactly where r is (a resumed training run). */
  get state(): number {
    return this.#state;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** One of `items`, each as likely as its weight; with equal weights the same draw as pick. */
  pickWeighted<T>(items: readonly T[], weights: readonly number[]): T {
    const total = weights.reduce((a, w) => a + w, 0);
    const u = this.next() * total;
    let upTo = 0;
    for (let i = 0; i < items.length; i++) {
      upTo += weights[i];
      if (u < upTo) return items[i];
    }
    return items[items.length - 1];
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  /** k distinct items. */
  sample<T>(items: readonly T[], k: number): T[] {
    return this.shuffle(items).slice(0, k);
  }

  /** A child generator with its own stream (so adding draws in one place does not shift another). */
  fork(): Random {
    return new Random(Math.floor(this.next() * 2 ** 32));
  }
}

/** A function returning the next uniform in [0, 1) of the stream seeded by `seed` (sampling draws). */
export function seededUniform(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}
