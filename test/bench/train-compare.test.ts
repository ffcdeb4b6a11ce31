/**
 * bench/train_compare.ts, the table of bench/gpu/train.sh and equal-accuracy.sh: a run paused and resumed over
 * calls counts each call's steps and seconds once, and both final models' shared evaluation is reported.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const write = (path: string, value: unknown) => writeFileSync(path, `${JSON.stringify(value)}\n`);
const jsonl = (path: string, rows: object[]) =>
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);

test('train_compare: steps and seconds summed over the calls of a resumed run, one evaluator for both', () => {
  const dir = mkdtempSync(join(tmpdir(), 'train-compare-'));
  try {
    mkdirSync(join(dir, 'longshot'));
    mkdirSync(join(dir, 'pytorch'));
    // longshot: call 1 steps 1–6 in 10 s, call 2 steps 7–12 in 20 s (report.json is the last call's).
    write(join(dir, 'longshot', 'report-1.json'), { steps: 6, startStep: 0, seconds: 10 });
    const last = { steps: 12, startStep: 6, seconds: 20, eval: { correct: 2, total: 3 } };
    write(join(dir, 'longshot', 'report-2.json'), last);
    write(join(dir, 'longshot', 'report.json'), last);
    jsonl(
      join(dir, 'longshot', 'log.jsonl'),
      Array.from({ length: 12 }, (_, i) => ({ step: i + 1, loss: 1 })),
    );
    // train_needle.py: paused after step 5 (9 s), then steps 6–12 (15 s) and its evaluation.
    write(join(dir, 'pytorch', 'report-1.json'), {
      vamba: { paused: 5, steps: 5, first: 1, seconds: 9 },
    });
    const py = {
      vamba: {
        steps: 12,
        first: 6,
        seconds: 15,
        eval: { heldout: { correct: 1, total: 3, accuracy: 1 / 3 } },
      },
    };
    write(join(dir, 'pytorch', 'report-2.json'), py);
    write(join(dir, 'pytorch', 'report.json'), py);
    jsonl(
      join(dir, 'pytorch', 'loss.jsonl'),
      Array.from({ length: 12 }, (_, i) => ({ step: i + 1, loss: 2, seconds: i })),
    );
    jsonl(join(dir, 'eval-longshot.json'), [{ data: 'set', correct: 5, total: 6 }]);
    jsonl(join(dir, 'eval-pytorch.json'), [{ data: 'set', correct: 4, total: 6 }]);

    execFileSync(process.execPath, ['--import', 'tsx', 'bench/train_compare.ts', dir, 'vamba'], {
      stdio: 'pipe',
    });
    const { rows } = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    assert.equal(rows.length, 2);
    assert.deepEqual(
      rows.map((r: { steps: number; seconds: number }) => [r.steps, r.seconds]),
      [
        [12, 30],
        [12, 24],
      ],
    );
    assert.deepEqual(rows[0].heldOut, { correct: 2, total: 3, accuracy: 2 / 3 });
    assert.deepEqual(rows[1].heldOut, { correct: 1, total: 3, accuracy: 1 / 3 });
    assert.deepEqual(rows[0].sameEvaluator, [{ data: 'set', correct: 5, total: 6 }]);
    assert.deepEqual(rows[1].sameEvaluator, [{ data: 'set', correct: 4, total: 6 }]);
    const md = readFileSync(join(dir, 'summary.md'), 'utf8');
    assert.match(
      md,
      /\| longshot train \| 12 \| 30\.0 \| 0\.40 \|.*\| 66\.7% \(2\/3\) \| 83\.3% \(5\/6\) \|/,
    );
    assert.match(md, /longshot \/ PyTorch steps\/s: 0\.80×/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
