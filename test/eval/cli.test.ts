/** `longshot eval` as a user runs it: bad usage and bad data are one line with the right exit code. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('longshot eval', () => {
  it('names the problem in one line: unknown benchmark, bad shard (exit 2), missing data (exit 3)', async () => {
    const [unknown, shard, missing] = await Promise.all([
      cli(['eval', 'videomm', '--data', '.']),
      cli(['eval', 'needle', '--data', '.', '--shard', '2/2']),
      cli(['eval', 'lvbench', '--data', 'no-such-dir']),
    ]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^longshot: unknown benchmark 'videomm'; choose from videomme, /);
    assert.equal(shard.code, 2);
    assert.match(shard.stderr, /^longshot: --shard must be i\/n with 0 ≤ i < n/);
    assert.equal(missing.code, 3);
    assert.match(
      missing.stderr,
      /^longshot: lvbench: cannot read no-such-dir\/video_info\.meta\.jsonl; download THUDM\/LVBench\n$/,
    );
  });
});
