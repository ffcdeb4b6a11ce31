/**
 * The functions with the most self time in a V8 CPU profile (`node --cpu-prof`), idle time left out:
 *
 *   npx tsx bench/cpuprofile_top.ts <file.cpuprofile> [--top 30] [--skip src/backends/cpu]
 *
 * --skip leaves out the functions whose file path contains the text (e.g. the CPU backend's kernels, to see the
 * JavaScript around them).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, skip: { type: 'string', multiple: true, default: [] } },
});
if (positionals.length !== 1) {
  console.error('usage: bench/cpuprofile_top.ts <file.cpuprofile> [--top N] [--skip PATH_TEXT]…');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const f = byId.get(id)?.callFrame;
  if (!f || f.functionName === '(idle)') return;
  const dt = profile.timeDeltas[i] ?? 0;
  total += dt;
  if (o.skip.some((s) => f.url.includes(s))) return;
  const where = f.url.replace(/^.*?\/(src|bench|tools|node_modules)\//, '$1/');
  const key = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
  selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
});
console.log(`${positionals[0]}: ${(total / 1e3).toFixed(0)} ms busy`);
console.log('| self ms | share | function |\n|---|---|---|');
for (const [key, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, Number(o.top)))
  console.log(`| ${(us / 1e3).toFixed(1)} | ${((100 * us) / total).toFixed(1)}% | ${key} |`);
