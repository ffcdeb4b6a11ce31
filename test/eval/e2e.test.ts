/**
 * The shipped tiny model (the default, needle-vamba-tiny) on a needle-format and a VNBench-format run, in
 * process through VideoLM and through `createServer` as an OpenAI endpoint on 127.0.0.1: the same answers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Benchmark } from '../../src/eval/benchmark.js';
import { needle } from '../../src/eval/benchmarks/needle.js';
import { VNBENCH_FILE, vnbench } from '../../src/eval/benchmarks/vnbench.js';
import { chatBody, endpoint, inProcess } from '../../src/eval/responders.js';
import { type Responder, requestFor, runBenchmark } from '../../src/eval/run.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { findTools } from '../../src/media/index.js';
import { generateDataset } from '../../src/needle/dataset.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';

const SAMPLING = { frames: 16, sampling: 'uniform' as const };
let dir: string;
let model: VideoLM;
let server: LongshotServer;
let url: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'longshot-eval-e2e-'));
  await generateDataset({
    out: dir,
    count: 3,
    seed: 7,
    lengths: [16],
    fps: 2,
    width: 112,
    height: 112,
    needleFrames: 2,
    ffmpegPath: findTools().ffmpeg,
  });
  // One VNBench sample on a needle video: its question, the 4 options rotated once per try.
  const options = ['red', 'blue', 'green', 'yellow'];
  const rows = [0, 1, 2, 3].map((t) => {
    const rotated = options.map((_, i) => options[(i + t) % 4]);
    return {
      video: 'needle-00000.mp4',
      question: 'What colour was the needle?',
      options: rotated,
      gt: 'red',
      gt_option: 'ABCD'[rotated.indexOf('red')],
      needle_time: [1],
      length: 8,
      type: 'ret_edit1',
      try: t,
    };
  });
  writeFileSync(join(dir, VNBENCH_FILE), JSON.stringify(rows));
  model = await VideoLM.load();
  server = createServer(model, { modelId: 'tiny', media: { allowedRoot: dir } });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
});
after(async () => {
  await server?.app.close();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function run(bench: Benchmark, responder: Responder, name: string) {
  const items = await bench.read(dir);
  return runBenchmark({
    benchmark: bench,
    items,
    responder,
    predictions: join(dir, `${name}.jsonl`),
    sampling: SAMPLING,
  });
}

describe('longshot eval end to end with the tiny model', () => {
  for (const bench of [needle, vnbench()])
    it(`${bench.name}: in process and through the server give identical predictions`, async () => {
      using local = inProcess(model);
      const a = await run(bench, local, `${bench.name}-local`);
      const b = await run(bench, endpoint({ url: `${url}/v1` }), `${bench.name}-http`);
      assert.ok(a.raw.size >= 3);
      assert.deepEqual([...b.raw], [...a.raw]);
      assert.deepEqual(b.scores, a.scores);
    });

  it('the frames fallback sends N PNG frames as image_url parts before the text', async () => {
    const [item] = await needle.read(dir);
    const body = await chatBody(item, requestFor({ benchmark: needle }, item), 'm', { url, frames: 3 });
    const parts = body.messages[0].content as { type: string; image_url?: { url: string }; text?: string }[];
    assert.deepEqual(
      parts.map((p) => p.type),
      ['image_url', 'image_url', 'image_url', 'text'],
    );
    assert.ok(
      parts.slice(0, 3).every((p) => p.image_url?.url.startsWith('data:image/png;base64,iVBORw0KGgo')),
    );
    assert.equal(parts[3].text, item.prompt);
    assert.equal(body.max_tokens, needle.maxNewTokens);
  });
});
