import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EMBEDDED_NOTICE, longshotCacheDir, noticeEmbeddedModel } from '../../src/cli/first-run.js';

const dir = mkdtempSync(join(tmpdir(), 'longshot-first-run-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for process.stderr that records what is written. */
const terminal = (isTTY: boolean) => {
  const lines: string[] = [];
  return { isTTY, lines, write: (s: string) => lines.push(s) };
};

test('the embedded-model notice shows once in a terminal, then never again for that cache directory', () => {
  const env = { LONGSHOT_CACHE_DIR: join(dir, 'once') };
  const first = terminal(true);
  noticeEmbeddedModel(first, env);
  assert.deepEqual(first.lines, [`${EMBEDDED_NOTICE}\n`]);
  assert.equal(first.lines[0].split('\n').length, 2, 'one line');
  assert.match(first.lines[0], /tiny demo/);
  assert.match(first.lines[0], /--model/);
  const second = terminal(true);
  noticeEmbeddedModel(second, env);
  assert.deepEqual(second.lines, []);
});

test('the notice never goes to a pipe, and a pipe does not use it up', () => {
  const env = { LONGSHOT_CACHE_DIR: join(dir, 'pipe') };
  const piped = terminal(false);
  noticeEmbeddedModel(piped, env);
  assert.deepEqual(piped.lines, []);
  assert.equal(existsSync(join(dir, 'pipe')), false);
  const tty = terminal(true);
  noticeEmbeddedModel(tty, env);
  assert.equal(tty.lines.length, 1);
});

test('the state lives under LONGSHOT_CACHE_DIR, else XDG_CACHE_HOME/longshot', () => {
  assert.equal(longshotCacheDir({ LONGSHOT_CACHE_DIR: '/x/y' }), '/x/y');
  assert.equal(longshotCacheDir({ XDG_CACHE_HOME: '/c' }), join('/c', 'longshot'));
});
