/** The Prometheus text exposition as the server tests read it. */
import assert from 'node:assert/strict';

/** Parses the exposition: samples by name+labels, and the # TYPE of each family. */
export function parseMetrics(text: string) {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.trimEnd().split('\n')) {
    const type = /^# TYPE (\w+) (gauge|counter|histogram)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    if (line.startsWith('#')) continue;
    const m = /^(\w+)(\{[^}]*\})? (-?[0-9.]+(?:e[+-]?\d+)?)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    samples.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return { samples, types };
}
