/**
 * The relevance timeline under the player: one bar per frame (its share of the answer's attention over the
 * video), the playhead, and a marker on each top moment that seeks the player when clicked.
 */
import type { Relevance } from './api.js';

/** A run of neighbouring frames with one score (frames that share a temporal token group). */
export interface Moment {
  /** First and last frame time of the run, seconds. */
  start: number;
  end: number;
  score: number;
  /** Where to seek: the middle of the time the run covers (each frame lasts until the next one). */
  at: number;
}

/** Seconds between sampled frames (the whole span for a single frame). */
const frameSpan = (t: readonly number[], duration: number) =>
  t.length > 1 ? (t[t.length - 1] - t[0]) / (t.length - 1) : duration;

/** The `count` highest local maxima, best first (runs of equal scores count as one). */
export function topMoments(r: Relevance, count: number, duration: number): Moment[] {
  const runs: Moment[] = [];
  r.scores.forEach((s, i) => {
    const last = runs[runs.length - 1];
    if (last && last.score === s) last.end = r.timestamps_sec[i];
    else runs.push({ start: r.timestamps_sec[i], end: r.timestamps_sec[i], score: s, at: 0 });
  });
  const span = frameSpan(r.timestamps_sec, duration);
  for (const m of runs) m.at = Math.min(duration, (m.start + m.end + span) / 2);
  const peaks = runs.filter(
    (m, i) =>
      (i === 0 || runs[i - 1].score < m.score) && (i === runs.length - 1 || runs[i + 1].score < m.score),
  );
  return peaks
    .filter((m) => m.score > 0)
    .sort((a, b) => b.score - a.score)
    .slice(0, count);
}

export const clock = (sec: number) => {
  const s = Math.max(0, sec);
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, '0')}`;
};

export class Timeline {
  private relevance: Relevance | null = null;
  private duration = 0;
  private time = 0;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly markers: HTMLElement,
    private readonly seek: (sec: number) => void,
  ) {
    canvas.addEventListener('click', (e) => {
      if (!this.duration) return;
      const rect = canvas.getBoundingClientRect();
      this.seek(((e.clientX - rect.left) / rect.width) * this.duration);
    });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  show(r: Relevance | null, duration: number): Moment[] {
    this.relevance = r;
    this.duration = duration;
    this.markers.replaceChildren();
    const top = r ? topMoments(r, 4, duration) : [];
    top.forEach((m, rank) => {
      const b = document.createElement('button');
      b.className = rank === 0 ? 'peak top' : 'peak';
      b.style.left = `${(100 * m.at) / duration}%`;
      b.dataset.start = String(m.start);
      b.dataset.end = String(m.end);
      b.dataset.at = String(m.at);
      b.title = `${clock(m.at)} · ${(100 * m.score).toFixed(1)}% of the attention`;
      b.textContent = String(rank + 1);
      b.addEventListener('click', () => this.seek(m.at));
      this.markers.append(b);
    });
    this.draw();
    return top;
  }

  setTime(sec: number): void {
    this.time = sec;
    this.draw();
  }

  private draw(): void {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const axis = 16;
    const plot = h - axis;
    g.fillStyle = '#161b26';
    g.fillRect(0, 0, w, plot);
    const r = this.relevance;
    const x = (sec: number) => (this.duration ? (sec / this.duration) * w : 0);
    if (r?.scores.length) {
      const max = Math.max(...r.scores) || 1;
      const span = frameSpan(r.timestamps_sec, this.duration);
      const grad = g.createLinearGradient(0, plot, 0, 0);
      grad.addColorStop(0, '#2b6cb0');
      grad.addColorStop(1, '#f6ad55');
      g.fillStyle = grad;
      r.scores.forEach((s, i) => {
        const x0 = x(r.timestamps_sec[i]);
        const bw = Math.max(1, x(r.timestamps_sec[i] + span) - x0 - 1);
        const bh = Math.max(1, (s / max) * (plot - 6));
        g.fillRect(x0, plot - bh, bw, bh);
      });
    } else {
      g.fillStyle = '#5a6478';
      g.font = '12px system-ui, sans-serif';
      g.fillText(
        'Ask a question: the timeline shows where in the video each answer looked.',
        10,
        plot / 2 + 4,
      );
    }
    // Time axis: a tick every "nice" interval.
    g.fillStyle = '#8a94a8';
    g.font = '10px system-ui, sans-serif';
    if (this.duration) {
      const step =
        [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800].find((s) => (this.duration / s) * 60 < w) ?? 3600;
      for (let t = 0; t <= this.duration; t += step) {
        g.fillRect(x(t), plot, 1, 4);
        g.fillText(clock(t).replace(/\.0$/, ''), Math.min(x(t) + 2, w - 28), h - 3);
      }
      g.fillStyle = '#e2e8f0';
      g.fillRect(Math.min(x(this.time), w - 2), 0, 2, plot);
    }
  }
}
