import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { videoDefaultsOf, withDefaults } from '../../src/facade/video-defaults.js';
import { VideoLM } from '../../src/facade/video-lm.js';

const cfg = (config: Record<string, unknown>) => config;

test('checkpoint video defaults are validated and the caller still wins', () => {
  assert.deepEqual(videoDefaultsOf(cfg({}), 'm'), {});
  const d = videoDefaultsOf(
    cfg({ longshot_video_defaults: { sampling: 'uniform', frames: 64, maxEdge: 112 } }),
    'm',
  );
  assert.deepEqual(d, { sampling: 'uniform', frames: 64, maxEdge: 112 });
  assert.deepEqual(withDefaults({ frames: 8, fps: undefined }, d), {
    sampling: 'uniform',
    frames: 8,
    maxEdge: 112,
  });
  assert.throws(() => videoDefaultsOf(cfg({ longshot_video_defaults: { frames: -1 } }), 'm'), ModelError);
  assert.throws(
    () => videoDefaultsOf(cfg({ longshot_video_defaults: { sampling: 'all' } }), 'm'),
    /sampling must be/,
  );
  assert.throws(
    () => videoDefaultsOf(cfg({ longshot_video_defaults: { size: 3 } }), 'm'),
    /unknown key 'size'/,
  );
});

test('the embedded model sees the example video as trained: every frame at 112×112', async () => {
  using model = await VideoLM.load();
  const handle = await model.encodeVideo('examples/needle/needle-00001.mp4');
  // 32 frames → 16 pairs; 112×112 → 8×8 patches → 4×4 merged tokens per pair.
  assert.equal(handle.tokens, 16 * 16);
  const answer = await model.ask(handle, 'What colour was the star?').result();
  assert.equal(answer.text.trim(), 'blue');
  handle.dispose();
});
