/** The jobs file: what a line may hold, how ids and paths are settled, and the errors that name the line. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InputError } from '../../src/errors.js';
import { readJobs } from '../../src/worker/index.js';

describe('jobs file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-jobs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, lines: string[]) => {
    const path = join(dir, name);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  };

  it('reads questions, resolves relative videos from its folder and gives a line without id a stable one', () => {
    const lines = [
      '{"id": "a", "video": "clips/a.mp4", "question": "Who?", "frames": 16, "temperature": 0}',
      '',
      '{"video": "https://example.com/b.mp4", "questions": ["What?", "Where?"]}',
    ];
    const jobs = readJobs(write('ok.jsonl', lines));
    assert.deepEqual(jobs[0], {
      id: 'a',
      video: join(dir, 'clips/a.mp4'),
      questions: ['Who?'],
      frames: 16,
      temperature: 0,
    });
    assert.equal(jobs[1].video, 'https://example.com/b.mp4');
    assert.deepEqual(jobs[1].questions, ['What?', 'Where?']);
    assert.match(jobs[1].id, /^job-[0-9a-f]{20}$/);
    assert.equal(readJobs(write('again.jsonl', lines))[1].id, jobs[1].id);
    const other = readJobs(
      write('other.jsonl', ['{"video": "https://example.com/b.mp4", "question": "When?"}']),
    );
    assert.notEqual(other[0].id, jobs[1].id);
  });

  it('refuses a bad line naming the file, the line and the field', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json', /bad\.jsonl:2: not a JSON object/],
      ['{"video": "a.mp4"}', /bad\.jsonl:2: give "question" \(a string\) or "questions"/],
      ['{"video": "a.mp4", "questions": []}', /bad\.jsonl:2: give "question"/],
      ['{"question": "x"}', /bad\.jsonl:2: "video" must be a path or URL/],
      ['{"video": "a.mp4", "question": "x", "id": "a:b"}', /bad\.jsonl:2: "id" must be a string of letters/],
      [
        '{"video": "a.mp4", "question": "x", "frames": "many"}',
        /bad\.jsonl:2: "frames" has a bad value "many"/,
      ],
      [
        '{"video": "a.mp4", "question": "x", "sampling": "random"}',
        /bad\.jsonl:2: "sampling" has a bad value/,
      ],
      ['{"video": "a.mp4", "question": "x", "colour": 1}', /bad\.jsonl:2: unknown field\(s\) colour/],
      [
        '{"id": "one", "video": "b.mp4", "question": "y"}',
        /bad\.jsonl:2: job id 'one' is already used on line 1/,
      ],
    ];
    for (const [line, message] of cases) {
      const path = write('bad.jsonl', ['{"id": "one", "video": "a.mp4", "question": "x"}', line]);
      assert.throws(
        () => readJobs(path),
        (e: Error) => e instanceof InputError && message.test(e.message),
        line,
      );
    }
    assert.throws(() => readJobs(write('empty.jsonl', [''])), /holds no jobs/);
    assert.throws(() => readJobs(join(dir, 'none.jsonl')), /cannot read the jobs file/);
  });

  it('batch commands refuse a bad file or Redis URL with one line and exit 3', () => {
    const good = write('good.jsonl', ['{"video": "a.mp4", "question": "x"}']);
    const cases: Array<[string[], RegExp]> = [
      [
        ['submit', write('bad.jsonl', ['{"video": 1}']), '--redis', 'redis://127.0.0.1:1'],
        /bad\.jsonl:1: "video"/,
      ],
      [['status', good, '--redis', 'localhost:6379'], /--redis must be a redis:\/\/ or rediss:\/\/ URL/],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'batch', ...args], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});
