import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { cachedSnapshot, resolveModel, snapshotDownload } from '../../src/hub/index.js';
import { FakeHub, gitSha1, pattern, sha256 } from './fake-hub.js';

const COMMIT = 'a'.repeat(39) + '1';
const shard1 = pattern(300_000, 1);
const shard2 = pattern(200_003, 2);
const config = Buffer.from(JSON.stringify({ model_type: 'qwen2_vl' }));
const index = Buffer.from(
  JSON.stringify({
    metadata: { total_size: shard1.length + shard2.length },
    weight_map: {
      'a.weight': 'model-00001-of-00002.safetensors',
      'b.weight': 'model-00002-of-00002.safetensors',
    },
  }),
);

function shardedRepo(commit = COMMIT) {
  return {
    commit,
    files: {
      'config.json': { data: config },
      'tokenizer.json': { data: Buffer.from('{"model":{}}') },
      'README.md': { data: Buffer.from('# readme') },
      'model.safetensors.index.json': { data: index },
      'model-00001-of-00002.safetensors': { data: shard1, lfs: true },
      'model-00002-of-00002.safetensors': { data: shard2, lfs: true },
      'pytorch_model.bin': { data: pattern(1000, 9), lfs: true },
      'model.gguf': { data: pattern(1000, 8), lfs: true },
    },
  };
}

/** A fresh HF cache folder, removed when the tests end. */
const caches: string[] = [];
const tmpCache = () => {
  caches.push(mkdtempSync(join(tmpdir(), 'longshot-hub-')));
  return caches[caches.length - 1];
};
after(() => {
  for (const dir of caches) rmSync(dir, { recursive: true, force: true });
});

describe('hub download', () => {
  let hub: FakeHub;
  before(async () => {
    hub = await new FakeHub().start();
  });
  after(() => hub.stop());
  const opts = (cacheDir: string, extra = {}) => ({
    endpoint: hub.hubUrl,
    cacheDir,
    retryDelayMs: 1,
    token: 'tok',
    ...extra,
  });

  it('downloads only the needed files into the huggingface_hub cache layout', async () => {
    hub.repos.set('org/sharded', shardedRepo());
    const cacheDir = tmpCache();
    const events: { total?: number; files?: number; bytes: number; done: boolean } = {
      bytes: 0,
      done: false,
    };
    const snap = await snapshotDownload(
      'org/sharded',
      opts(cacheDir, {
        reporter: {
          start: (total: number, files: number) => Object.assign(events, { total, files }),
          advance: (n: number) => {
            events.bytes += n;
          },
          finish: () => {
            events.done = true;
          },
        },
      }),
    );
    const repoDir = join(cacheDir, 'models--org--sharded');
    assert.equal(snap.commit, COMMIT);
    assert.equal(snap.dir, join(repoDir, 'snapshots', COMMIT));
    assert.equal(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), COMMIT);
    assert.deepEqual(snap.files.sort(), [
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
    ]);
    assert.ok(!existsSync(join(snap.dir, 'pytorch_model.bin')) && !existsSync(join(snap.dir, 'model.gguf')));
    assert.ok(!hub.cdnLog.some((r) => r.url.includes(sha256(pattern(1000, 9)))), 'fetched a .bin');
    // Blobs are named by etag; snapshot entries are relative symlinks to them.
    const link = join(snap.dir, 'model-00001-of-00002.safetensors');
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(readlinkSync(link), join('..', '..', 'blobs', sha256(shard1)));
    assert.ok(readFileSync(join(repoDir, 'blobs', gitSha1(config))).equals(config));
    assert.ok(readFileSync(link).equals(shard1));
    assert.ok(readFileSync(join(snap.dir, 'model-00002-of-00002.safetensors')).equals(shard2));
    // The token goes to the hub, never to the CDN.
    assert.ok(hub.hubLog.every((r) => r.authorization === 'Bearer tok'));
    assert.ok(hub.cdnLog.length >= 2 && hub.cdnLog.every((r) => r.authorization === undefined));
    assert.deepEqual(events, {
      total: shard1.length + shard2.length,
      files: 2,
      bytes: shard1.length + shard2.length,
      done: true,
    });
    assert.equal(snap.downloadedBytes, shard1.length + shard2.length + config.length + index.length + 12);

    // Again: everything is cached, no file is fetched; offline the cache alone answers.
    const before = hub.cdnLog.length;
    const again = await snapshotDownload('org/sharded', opts(cacheDir));
    assert.equal(again.downloadedBytes, 0);
    assert.equal(hub.cdnLog.length, before);
    const offline = await snapshotDownload('org/sharded', opts(cacheDir, { offline: true }));
    assert.equal(offline.dir, snap.dir);
  });

  it('resumes a download whose connection broke mid-file, with a correct sha256', async () => {
    hub.repos.set('org/flaky', shardedRepo('b'.repeat(40)));
    const cacheDir = tmpCache();
    const sha = sha256(shard1);
    hub.breakAfter.set(sha, 123_457);
    await assert.rejects(snapshotDownload('org/flaky', opts(cacheDir, { retries: 0 })), (e: Error) => {
      assert.ok(e instanceof ModelError);
      assert.match(e.message, /connection dropped.*run the command again to resume/);
      return true;
    });
    const partial = join(cacheDir, 'models--org--flaky', 'blobs', `${sha}.incomplete`);
    const kept = statSync(partial).size;
    assert.ok(kept > 0 && kept < shard1.length, `partial file of ${kept} bytes`);

    const snap = await snapshotDownload('org/flaky', opts(cacheDir));
    const ranged = hub.cdnLog.filter((r) => r.url.endsWith(sha) && r.range);
    assert.deepEqual(
      ranged.map((r) => r.range),
      [`bytes=${kept}-`],
    );
    const got = readFileSync(join(snap.dir, 'model-00001-of-00002.safetensors'));
    assert.equal(createHash('sha256').update(got).digest('hex'), sha);
    assert.ok(!existsSync(partial));
  });

  it('retries a dropped connection within one call, resuming with a Range request', async () => {
    hub.repos.set('org/flaky2', shardedRepo('c'.repeat(40)));
    const cacheDir = tmpCache();
    const sha = sha256(shard2);
    hub.breakAfter.set(sha, 65_536);
    const snap = await snapshotDownload('org/flaky2', opts(cacheDir, { retries: 2 }));
    assert.ok(readFileSync(join(snap.dir, 'model-00002-of-00002.safetensors')).equals(shard2));
    assert.ok(hub.cdnLog.some((r) => r.url.endsWith(sha) && r.range && /^bytes=\d+-$/.test(r.range)));
    assert.equal(snap.downloadedBytes, shard1.length + shard2.length + config.length + index.length + 12);
  });

  it('rejects a file whose sha256 does not match and keeps nothing of it', async () => {
    hub.repos.set('org/corrupt', shardedRepo('d'.repeat(40)));
    const cacheDir = tmpCache();
    const bad = Buffer.from(shard2);
    bad[1000] ^= 0xff;
    hub.corrupt.set(sha256(shard2), bad);
    await assert.rejects(snapshotDownload('org/corrupt', opts(cacheDir)), /corrupt \(sha256 mismatch\)/);
    hub.corrupt.clear();
    const blobs = join(cacheDir, 'models--org--corrupt', 'blobs');
    assert.ok(
      !existsSync(join(blobs, sha256(shard2))) && !existsSync(join(blobs, `${sha256(shard2)}.incomplete`)),
    );
  });

  it('says how to get access to a gated repo (401), and succeeds with the token', async () => {
    hub.repos.set('org/gated', { ...shardedRepo('e'.repeat(40)), gatedToken: 'secret' });
    const cacheDir = tmpCache();
    await assert.rejects(snapshotDownload('org/gated', opts(cacheDir, { token: 'wrong' })), (e: Error) => {
      assert.ok(e instanceof ModelError);
      assert.match(e.message, /org\/gated is gated.*accept its terms.*HF_TOKEN/);
      return true;
    });
    const snap = await snapshotDownload('org/gated', opts(cacheDir, { token: 'secret' }));
    assert.ok(readFileSync(join(snap.dir, 'config.json')).equals(config));
  });

  it('reports a missing repo or revision (404) as a model error', async () => {
    await assert.rejects(snapshotDownload('org/nope', opts(tmpCache())), /org\/nope: not found on the hub/);
    hub.repos.set('org/sharded', shardedRepo());
    await assert.rejects(
      snapshotDownload('org/sharded', opts(tmpCache(), { revision: 'v9' })),
      /org\/sharded: revision not found/,
    );
  });

  it('follows a renamed repo (relative redirect)', async () => {
    hub.repos.set('org/sharded', shardedRepo());
    hub.repos.set('old/name', { commit: COMMIT, files: {}, movedTo: 'org/sharded' });
    const snap = await snapshotDownload('old/name', opts(tmpCache()));
    assert.ok(readFileSync(join(snap.dir, 'config.json')).equals(config));
  });

  it('refuses a repo that offers no safetensors weights', async () => {
    hub.repos.set('org/binonly', {
      commit: 'f'.repeat(40),
      files: { 'config.json': { data: config }, 'pytorch_model.bin': { data: pattern(10, 3), lfs: true } },
    });
    await assert.rejects(
      snapshotDownload('org/binonly', opts(tmpCache())),
      /no safetensors weights.*pytorch_model\.bin/,
    );
  });

  it('offline, a model missing from the cache is a model error naming HF_HUB_OFFLINE', async () => {
    await assert.rejects(
      snapshotDownload('org/sharded', opts(tmpCache(), { offline: true })),
      (e: Error) => e instanceof ModelError && /HF_HUB_OFFLINE/.test(e.message),
    );
  });
});

describe('hub cache', () => {
  it('reuses a snapshot written by huggingface_hub, without the network', async () => {
    const cacheDir = tmpCache();
    const repoDir = join(cacheDir, 'models--Qwen--Qwen2-VL-2B-Instruct');
    const commit = '0123456789abcdef0123456789abcdef01234567';
    const snap = join(repoDir, 'snapshots', commit);
    mkdirSync(join(repoDir, 'blobs'), { recursive: true });
    mkdirSync(join(repoDir, 'refs'));
    mkdirSync(snap, { recursive: true });
    writeFileSync(join(repoDir, 'refs', 'main'), commit);
    for (const [name, data] of [
      ['config.json', config],
      ['model.safetensors', shard1],
    ] as const) {
      writeFileSync(join(repoDir, 'blobs', sha256(data)), data);
      symlinkSync(join('..', '..', 'blobs', sha256(data)), join(snap, name));
    }
    const dir = await resolveModel('Qwen/Qwen2-VL-2B-Instruct', {
      cacheDir,
      endpoint: 'http://127.0.0.1:9', // nothing listens: any request would fail
    });
    assert.equal(dir, snap);
    const hit = await cachedSnapshot('Qwen/Qwen2-VL-2B-Instruct', { cacheDir });
    assert.deepEqual(hit?.files, ['config.json', 'model.safetensors']);
    // A snapshot whose index names a shard that is absent is incomplete.
    writeFileSync(join(snap, 'model.safetensors.index.json'), index);
    assert.equal(await cachedSnapshot('Qwen/Qwen2-VL-2B-Instruct', { cacheDir }), undefined);
  });

  it('rejects names that are neither a directory, a shipped model nor an org/name id, naming the shipped ones', async () => {
    await assert.rejects(
      resolveModel('not a model'),
      /neither a directory, a shipped model \(needle-mambamia-tiny, needle-qwen2vl-tiny, needle-vamba-tiny\) nor a Hugging Face id/,
    );
  });

  it('finds a shipped model by its name from any working directory', async () => {
    const here = process.cwd();
    process.chdir(tmpdir());
    try {
      const dir = await resolveModel('needle-mambamia-tiny');
      assert.equal(dir, join(here, 'models', 'needle-mambamia-tiny'));
    } finally {
      process.chdir(here);
    }
  });
});
