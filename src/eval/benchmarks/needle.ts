/**
 * Our synthetic needle task (`longshot needle generate`: questions.jsonl + MP4s) in its multiple-choice form,
 * so the same harness (and an endpoint) can run it.
 */
import { join } from 'node:path';
import { readQuestions } from '../../needle/eval.js';
import { mcqPrompt } from '../../needle/tasks.js';
import { extractChoice } from '../answers.js';
import { accuracyScores, type Benchmark } from '../benchmark.js';

export const needle: Benchmark = {
  name: 'needle',
  layout: "questions.jsonl and the MP4s beside it (written by 'longshot needle generate')",
  maxNewTokens: 8,
  async read(dir) {
    return (await readQuestions(join(dir, 'questions.jsonl'))).map((q) => ({
      id: q.id,
      video: join(dir, q.video),
      question: q.question,
      options: q.options,
      answer: q.answerLetter,
      groups: { task: q.task, frames: String(q.frames) },
      prompt: mcqPrompt(q),
    }));
  },
  parse: (response) => extractChoice(response),
  score: (items, parsed) => accuracyScores(items, parsed),
};
