import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { hubCacheDir, resolveModelDir } from '../../src/io/index.js';

const cache = await mkdtemp(join(tmpdir(), 'longshot-hub-'));
after(() => rm(cache, { recursive: true, force: true }));

test('the cache directory follows the huggingface_hub environment variables', () => {
  assert.equal(hubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' }), '/a');
  assert.equal(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/c' }), '/c');
  assert.equal(hubCacheDir({ HF_HOME: '/b' }), '/b/hub');
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
  assert.equal(hubCacheDir({}), join(homedir(), '.cache', 'huggingface', 'hub'));
});

test('resolves a hub id through refs/<revision> to its snapshot; local directories pass through', async () => {
  const commit = 'a'.repeat(40);
  const repo = join(cache, 'models--TIGER-Lab--Vamba-Qwen2-VL-7B');
  await mkdir(join(repo, 'refs'), { recursive: true });
  await mkdir(join(repo, 'snapshots', commit), { recursive: true });
  await writeFile(join(repo, 'refs', 'main'), `${commit}\n`);
  await writeFile(join(repo, 'snapshots', commit, 'config.json'), '{}');
  const snap = join(repo, 'snapshots', commit);
  assert.equal(await resolveModelDir('TIGER-Lab/Vamba-Qwen2-VL-7B', { cacheDir: cache }), snap);
  assert.equal(
    await resolveModelDir('TIGER-Lab/Vamba-Qwen2-VL-7B', { cacheDir: cache, revision: commit }),
    snap,
  );
  assert.equal(await resolveModelDir(cache), cache);
  await assert.rejects(
    resolveModelDir('TIGER-Lab/Vamba-Qwen2-VL-7B', { cacheDir: cache, revision: 'v2' }),
    (e) => e instanceof ModelError && /not in the Hugging Face cache .*refs\/v2/.test(e.message),
  );
  await assert.rejects(
    resolveModelDir('Qwen/Qwen2-VL-7B-Instruct', { cacheDir: cache }),
    /Qwen\/Qwen2-VL-7B-Instruct: not in the Hugging Face cache/,
  );
  await assert.rejects(resolveModelDir('./no/such/dir/x'), /no such model directory/);
});
