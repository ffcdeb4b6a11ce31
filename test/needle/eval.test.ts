import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { type EvalReport, formatReport, formatSetTable, readQuestions } from '../../src/needle/eval.js';

test('readQuestions refuses a missing file, broken JSON and records that are not needle questions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'needle-eval-'));
  try {
    await assert.rejects(readQuestions(join(dir, 'questions.jsonl')), InputError);
    writeFileSync(join(dir, 'bad.jsonl'), '{"video": "a.mp4"\n');
    await assert.rejects(readQuestions(join(dir, 'bad.jsonl')), /bad\.jsonl:1: not valid JSON/);
    writeFileSync(join(dir, 'other.jsonl'), '{"video": "a.mp4", "question": "?", "answer": "x"}\n');
    await assert.rejects(readQuestions(join(dir, 'other.jsonl')), /other\.jsonl:1: not a needle question/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('formatReport lists accuracy by length, task and form', () => {
  const t = (correct: number, total: number) => ({ correct, total, accuracy: correct / total });
  const report: EvalReport = {
    model: 'm',
    architecture: 'vamba',
    data: 'd/questions.jsonl',
    ...t(3, 4),
    byTask: { color: t(2, 2), word: t(1, 2) },
    byForm: { short: t(2, 2), mcq: t(1, 2) },
    unanswerable: t(1, 1),
    byLength: {
      '16': {
        ...t(3, 4),
        videos: 2,
        secondsPerVideo: 0.5,
        peakRssMiB: 300,
        peakTensorMiB: 12,
        videoTokens: 64,
      },
    },
    items: [],
  };
  const text = formatReport(report);
  assert.match(text, /^vamba m on d\/questions\.jsonl: 75\.0% \(3\/4\)/);
  assert.match(
    text,
    /16 frames {2}75\.0% \(3\/4\)\s+0\.50 s\/video {2}64 video tokens {2}peak RSS 300 MiB {2}tensors 12 MiB/,
  );
  assert.match(text, /word {3}50\.0% \(1\/2\)/);
  assert.match(text, /mcq {4}50\.0% \(1\/2\)/);
  assert.match(text, /not shown \/ 0: 100\.0% \(1\/1\)/);
  const table = formatSetTable([report, { ...report, data: 'e/questions.jsonl', unanswerable: t(0, 0) }]);
  assert.match(
    table,
    /\| d\/questions\.jsonl \| 75\.0% \(3\/4\) \| 100\.0% \(2\/2\) \| 50\.0% \(1\/2\) \| 100\.0% \(1\/1\) \|/,
  );
  assert.match(table, /\| e\/questions\.jsonl \| 75\.0% \(3\/4\) .* \| – \|/);
});
