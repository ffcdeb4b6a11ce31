/**
 * The screenshots of the web UI in docs/ (docs/server.md shows them): the page at work on a needle video
 * from examples/needle, and on a generated "real-looking" clip (ffmpeg's mandelbrot source, 20 s, with a
 * blue square drawn over seconds 12–14). Run: node --import tsx tools/ui-screenshots.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ffmpeg } from '../test/media/fixtures.js';
import { ask, openUi, openVideo } from '../test/serve/ui-browser.js';

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
      await ui.page.click('.peak.top');
      await ui.page.waitForFunction(
        () => document.querySelectorAll('.moment:not([data-ready])').length === 0,
      );
      await ui.page.screenshot({ path: png, fullPage: true });
      console.log('wrote', png);
    }
  } finally {
    await ui.close();
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
