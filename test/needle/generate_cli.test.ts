import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openVideo } from '../../src/media/index.js';
import { readAllFrames, readQuestions, renderedFrames } from '../../src/needle/eval.js';
import { COLORS } from '../../src/needle/items.js';
import type { NeedleSample } from '../../src/needle/tasks.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });

test('needle generate writes decodable MP4s whose needle frames show the answer', async () => {
  const out = mkdtempSync(join(tmpdir(), 'needle-'));
  try {
    const r = cli([
      'needle',
      'generate',
      '--out',
      out,
      '--count',
      '3',
      '--frames',
      '12',
      '--tasks',
      'color',
      '--seed',
      '5',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).count, 3);
    const samples = readFileSync(join(out, 'questions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as NeedleSample & { video: string });
    assert.equal(samples.length, 3);
    for (const s of samples) {
      await using video = await openVideo(join(out, s.video));
      const n = s.needles[0];
      const sample = { indices: [n.startFrame, (n.endFrame + 3) % s.frames], timestampsSec: [0, 0] };
      const got: Uint8Array[] = [];
      for await (const batch of video.frames(sample)) for (const f of batch) got.push(f.data);
      const want = COLORS[s.answer as keyof typeof COLORS];
      const centre = (d: Uint8Array) => {
        const i = (Math.floor(n.y + n.size / 2) * s.width + Math.floor(n.x + n.size / 2)) * 3;
        return Math.max(...want.map((v, k) => Math.abs(d[i + k] - v)));
      };
      assert.ok(centre(got[0]) < 40, `needle frame of ${s.video} lost its ${s.answer}`);
      assert.ok(centre(got[1]) > 30, `frame without the needle looks ${s.answer}`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('needle generate draws needles over an ffmpeg test source at another size; eval decodes them at the model size', async () => {
  const out = mkdtempSync(join(tmpdir(), 'needle-haystack-'));
  try {
    const args = ['--count', '2', '--frames', '12', '--tasks', 'color', '--seed', '3', '--size', '320x240'];
    const r = cli([
      'needle',
      'generate',
      '--out',
      out,
      ...args,
      '--haystack',
      'smptebars',
      '--not-shown',
      '0',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const questions = await readQuestions(join(out, 'questions.jsonl'));
    for (const q of questions) {
      assert.equal(q.haystack, 'smptebars');
      assert.throws(() => renderedFrames(q), /drawn over ffmpeg's smptebars/);
      // Squeezed to 112×112 on decoding, as the tiny models' policy asks: the card's centre keeps its colour.
      const frames = await readAllFrames(join(out, q.video), () => ({ width: 112, height: 112 }));
      assert.equal(frames.length, 12);
      const n = q.needles[0];
      const f = frames[n.startFrame];
      assert.equal(f.width, 112);
      const x = Math.floor(((n.x + n.size / 2) * 112) / q.width);
      const y = Math.floor(((n.y + n.size / 2) * 112) / q.height);
      const want = COLORS[q.answer as keyof typeof COLORS];
      const got = f.data.subarray((y * 112 + x) * 3, (y * 112 + x) * 3 + 3);
      assert.ok(Math.max(...want.map((v, k) => Math.abs(got[k] - v))) < 40, `${q.answer}: ${got}`);
      // Off the needle's frames the same spot shows the bars, not the colour.
      const other = frames[(n.endFrame + 3) % 12].data.subarray((y * 112 + x) * 3, (y * 112 + x) * 3 + 3);
      assert.ok(Math.max(...want.map((v, k) => Math.abs(other[k] - v))) > 30, `bars look ${q.answer}`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('needle generate refuses bad options as usage errors (exit 2) that name the option, writing nothing', () => {
  const out = join(tmpdir(), `needle-refused-${process.pid}`);
  const cases: Array<[string[], RegExp]> = [
    [['--size', '100'], /--size must look like 112x112/],
    [['--tasks', 'color,juggle'], /--tasks: unknown task\(s\) juggle/],
    [['--count', 'many'], /--count expects a positive integer, got 'many'/],
    [['--frames', '16,,32'], /--frames expects positive integers separated by commas/],
    [['--seed', '-1'], /--seed expects an integer from 0/],
    [['--frames', '8', '--needle-frames', '3'], /--frames 8 cannot hold 4 needle\(s\) of --needle-frames 3/],
    [['--haystack', 'testsrc9'], /--haystack: unknown testsrc9; choose from testsrc2/],
    [['--phrasing', 'poetic'], /--phrasing: unknown poetic/],
    [['--not-shown', '1.5'], /--not-shown expects a number from 0 to 1, got '1.5'/],
    [['--scenes', 'bars,lava'], /--scenes: unknown lava/],
  ];
  for (const [args, message] of cases) {
    const r = cli(['needle', 'generate', '--out', out, ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  }
  assert.equal(existsSync(out), false);
});

test('needle eval takes the devices every command takes, auto by default', () => {
  const r = cli([
    'needle',
    'eval',
    '--model',
    'models/needle-vamba-tiny',
    '--data',
    'examples/needle',
    '--device',
    'tpu',
  ]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /argument 'tpu' is invalid\. Allowed choices are auto, cpu, cuda/);
  const help = cli(['needle', 'eval', '--help']);
  assert.match(help.stdout, /--device <device>.*\(choices: "auto", "cpu", "cuda", default: "auto"\)/s);
});

test('needle generate --no-video writes the same records without MP4s; a haystack set refuses it', () => {
  const a = mkdtempSync(join(tmpdir(), 'needle-'));
  const b = mkdtempSync(join(tmpdir(), 'needle-'));
  try {
    const args = [
      'needle',
      'generate',
      '--count',
      '2',
      '--frames',
      '16',
      '--seed',
      '9',
      '--not-shown',
      '0',
      '--json',
    ];
    assert.equal(cli([...args, '--out', a]).status, 0);
    const r = cli([...args, '--out', b, '--no-video']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      readFileSync(join(b, 'questions.jsonl'), 'utf8'),
      readFileSync(join(a, 'questions.jsonl'), 'utf8'),
    );
    assert.ok(existsSync(join(a, 'needle-00000.mp4')));
    assert.ok(!existsSync(join(b, 'needle-00000.mp4')));
    const h = cli([...args, '--out', b, '--no-video', '--haystack', 'grey']);
    assert.notEqual(h.status, 0);
    assert.match(h.stderr, /--haystack draws over ffmpeg test sources[\s\S]*leave out --no-video/);
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});
