import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../src/backends/index.js';
import { getBackend } from '../src/runtime/device.js';
import { autogradEngine } from '../src/train/engine.js';
import { readRecipe } from '../src/train/recipe.js';
import { train } from '../src/train/trainer.js';
const backend: any = await getBackend('cpu');
const counts = new Map<string, number>();
let on = false;
const f = backend.cast.bind(backend);
backend.cast = (out: any, x: any) => {
  if (on) { const k = `${x.dtype}->${out.dtype} ${x.shape.join('x')} ${new Error().stack!.split('\n').slice(2, 6).map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/(src\/[^)]*)\)/, '$1')).join(' < ')}`; counts.set(k, (counts.get(k) ?? 0) + 1); }
  return f(out, x);
};
const recipe = await readRecipe(process.argv[2]!);
await train({
  recipe: { ...recipe, batch: { ...recipe.batch, videos: 4 }, data: { ...recipe.data, eval: null },
    schedule: { ...recipe.schedule, steps: 2, warmup: 1 }, output: { ...recipe.output, dir: mkdtempSync(join(tmpdir(), 's-')), checkpointEvery: 1e9, evalEvery: 1e9 } },
  backend, engine: autogradEngine,
  onStep: (s: any) => { on = s.step === 1; },
});
const rows = [...counts].sort((a, b) => b[1] - a[1]);
console.log('total', rows.reduce((n, r) => n + r[1], 0));
for (const [k, v] of rows.slice(0, 40)) console.log(v, k);
