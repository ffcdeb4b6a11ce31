/** The benchmarks `longshot eval` knows, by the name users type. */
import type { Benchmark } from '../benchmark.js';
import { charades } from './charades.js';
import { longvideobench, lvbench, mlvu, mvbench, nextqa } from './mcq.js';
import { needle } from './needle.js';
import { videomme } from './videomme.js';
import { vnbench } from './vnbench.js';

/** `durationOf` gives a video's length (Video-MME places its subtitles by it). */
export function benchmarks(durationOf: (video: string) => Promise<number>): Record<string, Benchmark> {
  return {
    videomme: videomme(false),
    videomme_w_subtitle: videomme(true, durationOf),
    mlvu,
    longvideobench,
    lvbench,
    mvbench,
    nextqa,
    charades_sta: charades,
    vnbench: vnbench(),
    needle,
  };
}
