import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { findTools } from '../../src/media/ffmpeg.js';
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

test('ffmpeg discovery: explicit option > LONGSHOT_* > PATH > the npm-shipped binaries', async () => {
  // With nothing on PATH, the binaries shipped in @ffmpeg-installer / @ffprobe-installer are used.
  const savedPath = process.env.PATH;
  process.env.PATH = '';
  try {
    const shipped = findTools();
    assert.match(shipped.ffmpeg, /@ffmpeg-installer/);
    assert.match(shipped.ffprobe, /@ffprobe-installer/);
  } finally {
    process.env.PATH = savedPath;
  }
  const log = join(dir, 'calls.log');
  const onPath = join(dir, 'bin');
  wrapper(onPath, 'ffmpeg', tools.ffmpeg, log);
  wrapper(onPath, 'ffprobe', tools.ffprobe, log);
  process.env.PATH = `${onPath}${delimiter}${savedPath}`;
  try {
    assert.deepEqual(findTools(), { ffmpeg: join(onPath, 'ffmpeg'), ffprobe: join(onPath, 'ffprobe') });
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
  } finally {
    process.env.PATH = savedPath;
    delete process.env.LONGSHOT_FFPROBE;
  }
});
