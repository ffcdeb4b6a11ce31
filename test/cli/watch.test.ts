/**
 * `longshot watch`: questions typed on stdin are answered about the frames seen so far (prefixed by how far
 * the video has got), `:status` reports what is held, and a source that cannot be watched exits with 3.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

function watch(
  args: string[],
  input: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'watch', ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

const MODEL = ['--model', 'models/needle-vamba-tiny', '--device', 'cpu'];

describe('longshot watch', () => {
  it('answers each typed question about the video so far', async () => {
    const r = await watch(
      [
        'examples/needle/needle-00007.mp4',
        ...MODEL,
        '--fps',
        '2',
        '--idle-timeout',
        '1',
        '--max-new-tokens',
        '4',
      ],
      'Which word appeared?\n:status\n',
    );
    assert.equal(r.code, 0, r.stderr);
    const [answer, status] = r.stdout.trim().split('\n');
    // The question waits for the first frame pair, then is answered about what has arrived by then.
    assert.match(answer, /^\[\d+\.\d s, \d+ frames\] \S/);
    const seen = Number(/(\d+) frames\]/.exec(answer)![1]);
    assert.ok(seen >= 2 && seen % 2 === 0, answer);
    assert.match(status, /^\d+ frames seen over \d+\.\d s, \d+ video tokens, \d+\.\d MiB$/);
    assert.match(
      r.stderr,
      /watching examples\/needle\/needle-00007\.mp4 with models\/needle-vamba-tiny at 2 fps/,
    );
  });

  it('exits with 3 on a source it cannot watch, before loading a model', async () => {
    const missing = await watch(['no-such-stream.ts', ...MODEL], '');
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /no-such-stream\.ts: no such file/);
    const scheme = await watch(['gopher://camera/live', ...MODEL], '');
    assert.equal(scheme.code, 3);
    assert.match(scheme.stderr, /unsupported URL scheme/);
    const window = await watch(['examples/needle/needle-00007.mp4', ...MODEL, '--window', '0'], '');
    assert.equal(window.code, 2);
    assert.match(window.stderr, /--window must be a number > 0, got '0'/);
  });
});
