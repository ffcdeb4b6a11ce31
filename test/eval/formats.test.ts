/**
 * Each benchmark's reader on a tiny dataset in its published layout (annotation files as released, one short
 * ffmpeg video copied under every name), its official prompt, answer parsing and metrics against values
 * worked out by hand, and the resumable runner.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { InputError } from '../../src/errors.js';
import type { BenchItem, Benchmark } from '../../src/eval/benchmark.js';
import { charades } from '../../src/eval/benchmarks/charades.js';
import { longvideobench, lvbench, mlvu, mvbench, nextqa } from '../../src/eval/benchmarks/mcq.js';
import { videomme } from '../../src/eval/benchmarks/videomme.js';
import { vnbench } from '../../src/eval/benchmarks/vnbench.js';
import { type Responder, requestFor, runBenchmark } from '../../src/eval/run.js';
import { findTools, imageSequenceVideo, probe } from '../../src/media/index.js';
import { vambaEvaluation } from '../../src/models/vamba/evaluation.js';

let root: string;
let clip: string;
let runs = 0;

/** Writes `files` (relative path → text or bytes) and a copy of the clip at each of `videos`. */
function dataset(name: string, files: Record<string, string | ArrayBuffer>, videos: string[]): string {
  const dir = join(root, name);
  for (const [p, body] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), typeof body === 'string' ? body : new Uint8Array(body));
  }
  for (const v of videos) {
    mkdirSync(dirname(join(dir, v)), { recursive: true });
    copyFileSync(clip, join(dir, v));
  }
  return dir;
}

/** Runs a benchmark with canned responses (by item order) and returns the result. */
async function score(bench: Benchmark, dir: string, responses: string[]) {
  const items = await bench.read(dir);
  const byId = new Map(items.map((i, k) => [i.id, responses[k]]));
  const responder: Responder = { answer: async (item) => byId.get(item.id) ?? '' };
  const predictions = join(dir, 'out', `p${++runs}.jsonl`);
  const r = await runBenchmark({ benchmark: bench, items, responder, predictions });
  return r;
}

const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} ≠ ${b}`);

before(() => {
  root = mkdtempSync(join(tmpdir(), 'longshot-eval-'));
  clip = join(root, 'clip.mp4');
  execFileSync(findTools().ffmpeg, [
    ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=4', '-t', '1'],
    ...['-pix_fmt', 'yuv420p', clip],
  ]);
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('benchmark formats', () => {
  it('Video-MME: parquet rows, the lmms-eval prompt, accuracy by duration; subtitles on sampled frames', async () => {
    const col = (name: string, data: unknown[]) => ({ name, data });
    const parquet = parquetWriteBuffer({
      columnData: [
        col('videoID', ['v1', 'v2', 'v3']),
        col('question_id', ['001-1', '002-1', '003-1']),
        col('duration', ['short', 'medium', 'long']),
        col('domain', ['Knowledge', 'Knowledge', 'Sports']),
        col('sub_category', ['Humanity', 'Humanity', 'Football']),
        col('task_type', ['Counting Problem', 'OCR Problems', 'Counting Problem']),
        col('question', ['How many cats?', 'What is written?', 'Who scores?']),
        col('options', [
          ['A. One.', 'B. Two.', 'C. Three.', 'D. Four.'],
          ['A. cat', 'B. dog', 'C. red', 'D. sky'],
          ['A. a', 'B. b', 'C. c', 'D. d'],
        ]),
        col('answer', ['A', 'C', 'D']),
      ],
    });
    const srt =
      '1\n00:00:00,000 --> 00:00:00,500\n<font color="white" size=".72c">hello there</font>\n\n2\n00:00:05,000 --> 00:00:06,000\n<font color="white" size=".72c">too late</font>\n';
    const dir = dataset(
      'videomme',
      { 'videomme/test-00000-of-00001.parquet': parquet, 'subtitle/v1.srt': srt },
      ['data/v1.mp4', 'data/v2.mp4', 'data/v3.mp4'],
    );
    const r = await score(videomme(), dir, ['The best answer is B', '(C) red', 'D.']);
    assert.equal(
      r.items[0].prompt,
      "Select the best answer to the following multiple-choice question based on the video and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.\nHow many cats?\nA. One.\nB. Two.\nC. Three.\nD. Four.\n\nAnswer with the option's letter from the given choices directly.",
    );
    assert.deepEqual(r.items[0].options, ['One.', 'Two.', 'Three.', 'Four.']);
    assert.deepEqual([...r.parsed.values()], ['B', 'C', 'D']);
    near(r.scores.metrics.accuracy, 200 / 3);
    assert.deepEqual(
      Object.fromEntries(Object.entries(r.scores.breakdown.duration).map(([k, t]) => [k, t.score])),
      { short: 0, medium: 100, long: 100 },
    );
    assert.equal(r.scores.breakdown.task_type['Counting Problem'].correct, 1);
    const subs = await videomme(true, async () => 1).read(dir);
    assert.equal(
      subs[0].prompt,
      "This video's subtitles are listed below: \nhello there\nSelect the best answer to the following multiple-choice question based on the video and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.\nHow many cats?\nA. One.\nB. Two.\nC. Three.\nD. Four.\nThe best answer is:",
    );
  });

  it('MLVU dev: per-task JSON, generation tasks skipped, findNeedle → needle, M-avg', async () => {
    const entry = (video: string, answer: string, type: string) => ({
      video,
      duration: 300,
      question: 'What happens?',
      candidates: ['cat', 'dog', 'car', 'sun'],
      answer,
      question_type: type,
    });
    const dir = dataset(
      'mlvu',
      {
        'MLVU/json/1_plotQA.json': JSON.stringify([entry('p.mp4', 'cat', 'plotQA')]),
        'MLVU/json/2_needle.json': JSON.stringify([
          entry('n.mp4', 'dog', 'findNeedle'),
          entry('n.mp4', 'car', 'findNeedle'),
        ]),
        'MLVU/json/9_summary.json': JSON.stringify([
          { video: 's.mp4', question: 'Summarise', answer: 'long' },
        ]),
      },
      ['MLVU/video/1_plotQA/p.mp4', 'MLVU/video/2_needle/n.mp4'],
    );
    const r = await score(mlvu, dir, ['A) cat', 'B', 'C']);
    assert.equal(r.items.length, 3);
    assert.equal(
      r.items[0].prompt,
      'Question: What happens?\nOptions:\n(A) cat\n(B) dog\n(C) car\n(D) sun\nOnly give the best option.\nBest option: (',
    );
    assert.deepEqual(Object.keys(r.scores.breakdown.task_type).sort(), ['needle', 'plotQA']);
    near(r.scores.metrics.accuracy, 100); // golds A, B, C
    // M-avg is the mean of the task means, not of the items: plotQA 1/1, needle 1/2.
    const r2 = await score(mlvu, dir, ['(A', 'B', 'A']);
    near(r2.scores.metrics.accuracy, 200 / 3);
    near(r2.scores.metrics['m-avg'], (100 + 50) / 2);
  });

  it('LongVideoBench val: candidates up to 5, correct_choice, the random letter for a rambling answer', async () => {
    const row = (id: string, correct: number) => ({
      id,
      video_path: `${id}.mp4`,
      subtitle_path: `${id}_en.json`,
      question: 'Which object appears first?',
      candidates: ['a cup', 'a pen', 'a hat', 'a box', 'a key'],
      correct_choice: correct,
      duration_group: 600,
      question_category: 'E2O',
      duration: 500,
      starting_timestamp_for_subtitles: 0,
    });
    const dir = dataset('lvb', { 'lvb_val.json': JSON.stringify([row('x1', 4), row('x2', 0)]) }, [
      'videos/x1.mp4',
      'videos/x2.mp4',
    ]);
    const rambling = 'I really cannot tell from this video what it was, sorry about that one';
    const r = await score(longvideobench, dir, ['E', rambling]);
    assert.equal(
      r.items[0].prompt,
      "Which object appears first?\nA. a cup\nB. a pen\nC. a hat\nD. a box\nE. a key\nAnswer with the option's letter from the given choices directly.\n",
    );
    assert.equal(r.parsed.get('x1'), 'E');
    const guess = r.parsed.get('x2') ?? '';
    assert.match(guess, /^[A-E]$/);
    assert.equal(longvideobench.parse(rambling, r.items[1]), guess, 'the random letter is stable');
    assert.equal(r.scores.breakdown.duration_group['600'].total, 2);
  });

  it('LVBench: options inside the question, question_type lists count in every category', async () => {
    const q = (uid: number, answer: string, types: string[]) => ({
      uid,
      question: 'What colour is the car?\n(A) red\n(B) blue\n(C) green\n(D) white',
      answer,
      question_type: types,
      time_reference: '00:10-00:20',
    });
    const line = {
      key: 'yt1',
      qa: [q(1, 'C', ['key information retrieval', 'reasoning']), q(2, 'B', ['reasoning'])],
    };
    const dir = dataset('lvbench', { 'video_info.meta.jsonl': `${JSON.stringify(line)}\n` }, [
      'videos/yt1.mp4',
    ]);
    const r = await score(lvbench, dir, ['C', 'A']);
    assert.equal(
      r.items[0].prompt,
      'What colour is the car?\n(A) red\n(B) blue\n(C) green\n(D) white\nAnswer the question with the option letter',
    );
    assert.deepEqual(r.items[0].options, ['red', 'blue', 'green', 'white']);
    near(r.scores.metrics.accuracy, 50);
    assert.deepEqual(r.scores.breakdown.question_type['key information retrieval'], {
      correct: 1,
      total: 1,
      score: 100,
    });
    assert.deepEqual(r.scores.breakdown.question_type.reasoning, { correct: 1, total: 2, score: 50 });
  });

  it('MVBench: answer text → letter, the task folder map, empty answers left out of the mean', async () => {
    const e = (answer: string) => ({
      video: 'v.webm',
      question: 'What does the person do?',
      candidates: ['push', 'pull', 'lift'],
      answer,
    });
    const dir = dataset(
      'mvbench',
      { 'json/action_antonym.json': JSON.stringify([e('push'), e('push'), e('lift')]) },
      ['video/ssv2_video/v.webm'],
    );
    const r = await score(mvbench, dir, ['(A) push', '', 'I think B']);
    assert.equal(
      r.items[0].prompt,
      'Question:What does the person do?\nOption:\n(A) push\n(B) pull\n(C) lift\nOnly give the best option.\n',
    );
    assert.deepEqual([...r.parsed.values()], ['A', '', 'B']);
    near(r.scores.metrics.accuracy, 50);
  });

  it('MVBench: start/end become a clip; episodic_reasoning frame folders become a video made once', async () => {
    const row = (video: string, start: number, end: number) => ({
      video,
      question: 'What happened?',
      candidates: ['sat', 'ran'],
      answer: 'ran',
      start,
      end,
    });
    const dir = dataset(
      'mvbench-bounds',
      {
        'json/action_sequence.json': JSON.stringify([row('a.mp4', 0.25, 0.75)]),
        'json/episodic_reasoning.json': JSON.stringify([row('s01e02_seg02_clip_00', 1, 2)]),
      },
      ['video/star/Charades_v1_480/a.mp4'],
    );
    // Seven TVQA-style frames, 00001.jpg … 00007.jpg.
    const frames = join(dir, 'video/tvqa/frames_fps3_hq/s01e02_seg02_clip_00');
    mkdirSync(frames, { recursive: true });
    execFileSync(findTools().ffmpeg, [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=3'],
      ...['-frames:v', '7', '-start_number', '1', join(frames, '%05d.jpg')],
    ]);
    const items = await mvbench.read(dir);
    assert.deepEqual(
      items.map((i) => [i.id, i.clip, i.frameFolderFps]),
      [
        ['action_sequence/0', { startSec: 0.25, endSec: 0.75 }, undefined],
        ['episodic_reasoning/0', { startSec: 1, endSec: 2 }, 3],
      ],
    );
    const seen: BenchItem[] = [];
    const responder: Responder = {
      async answer(item) {
        seen.push(item);
        return 'B';
      },
    };
    const predictions = join(dir, 'out', 'p.jsonl');
    const r = await runBenchmark({ benchmark: mvbench, items, responder, predictions });
    near(r.scores.metrics.accuracy, 100);
    // The frame folder was answered as a Matroska file of its 7 frames at 3 fps, kept beside the predictions.
    assert.equal(seen[0].video, items[0].video);
    assert.match(seen[1].video, /frame-videos\/s01e02_seg02_clip_00-[0-9a-f]{12}\.mkv$/);
    assert.deepEqual(seen[1].clip, { startSec: 1, endSec: 2 });
    const info = await probe(seen[1].video, { scan: true });
    assert.equal(info.frameCount, 7);
    assert.ok(Math.abs(info.fps - 3) < 1e-9, `fps ${info.fps}`);
    // A missing folder, and a folder with a gap in its numbering, are named.
    rmSync(join(frames, '00004.jpg'));
    await assert.rejects(
      imageSequenceVideo(frames, 3, join(dir, 'gap.mkv')),
      (e: Error) => e instanceof InputError && /frame 4 is missing/.test(e.message),
    );
    rmSync(frames, { recursive: true });
    await assert.rejects(mvbench.read(dir), /frame folder not found at .*s01e02_seg02_clip_00/);
  });

  it('NExT-QA MC: CSV + video map, no instruction line, MMMU parsing by option text', async () => {
    const csv =
      'video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n' +
      '4010069381,1000,640,480,why did the boy stand up,1,3,CW,sits down,opens the door,"waves, smiling",eats,runs\n' +
      '4010069381,1000,640,480,what does the boy do at the end,4,5,TN,sits down,opens the door,waves,eats,runs\n';
    const dir = dataset(
      'nextqa',
      { 'test.csv': csv, 'map_vid_vidorID.json': JSON.stringify({ '4010069381': '0000/4010069381' }) },
      ['NExTVideo/0000/4010069381.mp4'],
    );
    const r = await score(nextqa, dir, ['(B) opens the door', 'he stands and then he runs away quickly']);
    assert.equal(
      r.items[0].prompt,
      'why did the boy stand up\nA. sits down\nB. opens the door\nC. waves, smiling\nD. eats\nE. runs',
    );
    assert.deepEqual([...r.parsed.values()], ['B', 'E']);
    near(r.scores.metrics.accuracy, 100);
    assert.deepEqual(Object.keys(r.scores.breakdown.type).sort(), ['CW', 'TN']);
  });

  it('Charades-STA: "ID s e##sentence", the grounding prompt, IoU ≥ threshold recalls and mIoU', async () => {
    const dir = dataset(
      'charades',
      {
        'Charades_sta_test.txt':
          'AO8RW 0.0 6.9##a person is putting a book on a shelf.\nAO8RW 2.0 4.0##person opens door\n',
        'Charades_v1_test.csv': 'id,subject,scene,length\nAO8RW,HR43,Kitchen,33.67\n',
      },
      ['Charades_v1_480/AO8RW.mp4'],
    );
    const r = await score(charades, dir, [
      'The event happens in 1.0 - 6.9 seconds.',
      'Start time: 3.0s\nEnd time: 5.0s',
    ]);
    assert.match(
      r.items[1].prompt,
      /^Please find the visual event .* 24\.3 - 30\.4 seonds\. Now I will give you the textual sentence: person opens door\. Please return its start time and end time\.$/,
    );
    assert.deepEqual([...r.parsed.values()], ['1,6.9', '3,5']);
    // IoUs: 5.9/6.9 and 1/3.
    near(r.scores.metrics.mIoU, ((5.9 / 6.9 + 1 / 3) / 2) * 100);
    assert.deepEqual(
      [r.scores.metrics['R@0.3'], r.scores.metrics['R@0.5'], r.scores.metrics['R@0.7']],
      [100, 50, 50],
    );
    assert.equal(r.items[0].extra?.duration, 33.67);
  });

  it('VNBench: 4 tries per sample, all 4 right to count, ret/ord/cnt means; eval.py reads "Answer: B" as A', async () => {
    const tries = (video: string, type: string, golds: string[]) =>
      golds.map((g, t) => ({
        video,
        question: 'What is the secret word?',
        options: ['Alice', 'Bob', 'Carol', 'Dave'],
        gt: 'Bob',
        gt_option: g,
        needle_time: [3.5],
        length: 20,
        type,
        try: t,
      }));
    const rows = [
      ...tries('h1_ret_edit1.mp4', 'ret_edit1', ['C', 'D', 'C', 'B']),
      ...tries('h1_cnt_edit1.mp4', 'cnt_edit1', ['A', 'A', 'D', 'C']),
    ];
    const dir = dataset('vnbench', { 'VNBench-main-4try.json': JSON.stringify(rows) }, [
      'h1_ret_edit1.mp4',
      'h1_cnt_edit1.mp4',
    ]);
    const r = await score(vnbench(), dir, ['C', 'D. Dave', 'C', 'B', 'Answer: A', 'A', 'D', 'Answer: C']);
    assert.equal(
      r.items[0].prompt,
      "What is the secret word?\nA. Alice\nB. Bob\nC. Carol\nD. Dave\nAnswer with the option's letter from the given choices directly.",
    );
    assert.equal(r.parsed.get('h1_cnt_edit1.mp4#3'), 'A');
    assert.deepEqual(r.scores.breakdown.type, {
      ret_edit1: { correct: 1, total: 1, score: 100 },
      cnt_edit1: { correct: 0, total: 1, score: 0 },
    });
    assert.deepEqual(r.scores.metrics, { overall: 100 / 3, ret: 100, ord: 0, cnt: 0 });
  });
});

describe('model families', () => {
  it("Vamba's hook asks with its own prompt and parsing where its paper did, else the official ones", async () => {
    const [item] = await lvbench.read(join(root, 'lvbench'));
    const own = requestFor({ benchmark: lvbench, family: vambaEvaluation }, item);
    assert.equal(
      own.text,
      'Select the best answer to the following multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) of the correct option.\nWhat colour is the car?\nA. red\nB. blue\nC. green\nD. white',
    );
    assert.equal(own.parse('The answer is (b)'), 'B');
    assert.equal(own.parse('Blue'), 'B', "Vamba's rule: the first letter of the reply");
    const [sta] = await charades.read(join(root, 'charades'));
    const official = requestFor(
      { benchmark: charades, family: vambaEvaluation, sampling: { frames: 8 } },
      sta,
    );
    assert.equal(official.text, sta.prompt);
    assert.equal(official.maxNewTokens, 50);
    assert.deepEqual(official.sampling, { frames: 8 });
  });
});

describe('the resumable runner', () => {
  it('appends as it goes, resumes after a partial line, and splits by shard', async () => {
    const dir = join(root, 'lvbench');
    const items = await lvbench.read(dir);
    const asked: string[] = [];
    const responder: Responder = {
      answer: async (i: BenchItem) => {
        asked.push(i.id);
        return 'C';
      },
    };
    const predictions = join(root, 'resume', 'p.jsonl');
    await runBenchmark({ benchmark: lvbench, items, responder, predictions, limit: 1 });
    assert.deepEqual(asked, ['1']);
    writeFileSync(predictions, `${await readFile(predictions, 'utf8')}{"id":"2","resp`); // killed mid-write
    const r = await runBenchmark({ benchmark: lvbench, items, responder, predictions });
    assert.deepEqual(asked, ['1', '2']);
    assert.equal(r.raw.size, 2);
    const lines = (await readFile(predictions, 'utf8')).split('\n').filter(Boolean);
    assert.deepEqual(JSON.parse(lines.at(-1) ?? ''), { id: '2', response: 'C' });
    const shard = await runBenchmark({
      benchmark: lvbench,
      items,
      responder,
      predictions: join(root, 'resume', 's.jsonl'),
      shard: { index: 1, count: 2 },
    });
    assert.deepEqual(
      shard.items.map((i) => i.id),
      ['2'],
    );
  });
});
