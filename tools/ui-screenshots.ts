/**
 * The screenshots of the web UI in docs/ (docs/server.md shows them): the page at work on a needle video
 * from examples/needle, on a generated "real-looking" clip (ffmpeg's mandelbrot source, 20 s, with a
 * blue square drawn over seconds 12–14), on a live session (a needle record streamed into a growing y4m
 * file), and a TimeViper timeline (a tiny TimeViper with random weights and TransV stages, served with
 * `--reduce transv` so they run; its answer is noise: the picture shows the timeline, not a model). Run: node --import tsx tools/ui-screenshots.ts
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readQuestions, renderedFrames } from '../src/needle/eval.js';
import { ffmpeg } from '../test/media/fixtures.js';
import { writeTinyTimeViper } from '../test/models/tiny-timeviper.js';
import { ask, openUi, openVideo, type UiSession } from '../test/serve/ui-browser.js';
import { y4mParts } from '../test/serve/y4m.js';

/**
 * The top peak clicked, the moments' thumbnails drawn, then the whole page, its colours reduced to a 256-colour
 * palette (a third of the bytes: the tree stays small).
 */
async function shoot(ui: UiSession, png: string): Promise<void> {
  await ui.page.click('.peak.top');
  await ui.page.waitForFunction(() => document.querySelectorAll('.moment:not([data-ready])').length === 0);
  const full = join(root, 'screenshot.png');
  await ui.page.screenshot({ path: full, fullPage: true });
  await ffmpeg([
    '-i',
    full,
    '-vf',
    'split[a][b];[a]palettegen=max_colors=256[p];[b][p]paletteuse=dither=sierra2_4a',
    png,
  ]);
  console.log('wrote', png);
}

const root = mkdtempSync(join(tmpdir(), 'longshot-shots-'));
try {
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'mandelbrot=size=640x360:rate=10',
    '-vf',
    "drawbox=x=260:y=120:w=120:h=120:color=blue:t=fill:enable='between(t,12,14)'",
    '-t',
    '20',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    join(root, 'mandelbrot-with-a-blue-square.mp4'),
  ]);
  await ffmpeg(['-i', 'examples/needle/needle-00001.mp4', '-c', 'copy', join(root, 'needle-00001.mp4')]);
  const ui = await openUi({ modelId: 'needle-vamba-tiny', media: { allowedRoot: root } });
  try {
    await ui.page.goto(ui.url);
    for (const [video, questions, png] of [
      [
        'needle-00001.mp4',
        ['What colour was the star?', 'How many times did a blue star appear?'],
        'docs/web-ui-needle.png',
      ],
      ['mandelbrot-with-a-blue-square.mp4', ['What colour was the square?'], 'docs/web-ui-mandelbrot.png'],
    ] as const) {
      await openVideo(ui.page, video);
      for (const q of questions) console.log(video, q, '→', await ask(ui.page, q));
      await shoot(ui, png);
    }
    // Live: the first half of a word-needle record, then the rest while the page watches.
    const [q] = (await readQuestions('examples/needle/questions.jsonl')).filter((x) => x.task === 'word');
    const y4m = y4mParts(renderedFrames(q), q.width, q.height, q.fps);
    const stream = join(root, 'camera.y4m');
    const half = q.frames / 2;
    writeFileSync(stream, Buffer.concat([y4m.header, y4m.frames(0, half)]));
    await ui.page.fill('#live-source', 'camera.y4m');
    await ui.page.fill('#live-fps', String(q.fps));
    await ui.page.click('#watch');
    await ui.page.waitForFunction(() => document.querySelectorAll('#live-frames figure').length >= 2);
    appendFileSync(stream, y4m.frames(half, q.frames));
    await ui.page.waitForFunction(
      (n) =>
        document.getElementById('progress-text')!.textContent!.includes(`${n} frames seen, ${n} encoded`),
      q.frames,
      { timeout: 60_000 },
    );
    console.log(
      'live',
      q.question,
      '→',
      await ask(ui.page, q.question),
      `(needle at ${q.needles[0].startSec} s)`,
    );
    await shoot(ui, 'docs/web-ui-live.png');
  } finally {
    await ui.close();
  }
  // TimeViper: a tiny random one (test/models/tiny-timeviper.ts) on the mandelbrot clip.
  const tv = join(root, 'tiny-timeviper');
  mkdirSync(tv);
  writeTinyTimeViper(tv);
  const tvUi = await openUi(
    {
      modelId: 'tiny TimeViper (random weights)',
      media: { allowedRoot: root },
      reduce: { method: 'transv' },
    },
    undefined,
    tv,
  );
  try {
    await tvUi.page.goto(tvUi.url);
    await openVideo(tvUi.page, 'mandelbrot-with-a-blue-square.mp4');
    console.log('timeviper →', await ask(tvUi.page, 'what is it?'));
    await shoot(tvUi, 'docs/web-ui-timeviper.png');
  } finally {
    await tvUi.close();
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
