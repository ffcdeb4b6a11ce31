import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { findTools, toolVersions } from '../../src/media/ffmpeg.js';
import { encodePng } from '../../src/media/png.js';
import { probe } from '../../src/media/video.js';
import { scratch, tools } from './fixtures.js';

const dir = scratch();

/** A wrapper script named `name` that runs the real binary, so using it proves which one was picked. */
function wrapper(folder: string, name: string, real: string, log: string): string {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, name);
  writeFileSync(path, `#!/bin/sh\necho ${path} >> ${log}\nexec ${real} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

test('ffmpeg discovery: explicit option > LONGSHOT_* > the npm-shipped binaries > PATH', async () => {
  const saved = {
    PATH: process.env.PATH,
    LONGSHOT_FFMPEG: process.env.LONGSHOT_FFMPEG,
    LONGSHOT_FFPROBE: process.env.LONGSHOT_FFPROBE,
  };
  delete process.env.LONGSHOT_FFMPEG;
  delete process.env.LONGSHOT_FFPROBE;
  const log = join(dir, 'calls.log');
  const onPath = join(dir, 'bin');
  wrapper(onPath, 'ffmpeg', tools.ffmpeg, log);
  wrapper(onPath, 'ffprobe', tools.ffprobe, log);
  process.env.PATH = `${onPath}${delimiter}${saved.PATH}`;
  try {
    // A binary on PATH does not displace the shipped ones: what decodes does not depend on the machine.
    const shipped = findTools();
    assert.match(shipped.ffmpeg, /@ffmpeg-installer/);
    assert.match(shipped.ffprobe, /@ffprobe-installer/);
    const envProbe = wrapper(join(dir, 'env'), 'ffprobe', tools.ffprobe, log);
    process.env.LONGSHOT_FFPROBE = envProbe;
    assert.equal(findTools().ffprobe, envProbe);
    const explicit = wrapper(join(dir, 'explicit'), 'ffprobe', tools.ffprobe, log);
    assert.equal(findTools({ ffprobePath: explicit }).ffprobe, explicit);
    // And the chosen binary is the one that runs.
    const png = join(dir, 'x.png');
    writeFileSync(png, encodePng(2, 2, new Uint8Array(12)));
    writeFileSync(log, '');
    await probe(png, { ffprobePath: explicit });
    const calls = readFileSync(log, 'utf8');
    assert.ok(calls.includes(explicit), calls);
    assert.ok(!calls.includes(envProbe), calls);
    process.env.LONGSHOT_FFMPEG = join(dir, 'no-such-ffmpeg');
    assert.throws(
      () => findTools(),
      /LONGSHOT_FFMPEG points to .*no-such-ffmpeg, which is not an executable file/,
    );
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('toolVersions names the binaries in use and their versions', async () => {
  const v = await toolVersions();
  assert.equal(v.ffmpeg.path, tools.ffmpeg);
  assert.equal(v.ffprobe.path, tools.ffprobe);
  for (const [path, version] of [
    [tools.ffmpeg, v.ffmpeg.version],
    [tools.ffprobe, v.ffprobe.version],
  ]) {
    const first = spawnSync(path, ['-version'], { encoding: 'utf8' }).stdout.split('\n')[0];
    assert.ok(version.length > 0 && first.includes(` version ${version} `), `${first} vs ${version}`);
  }
});
