import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Answer, type Generation } from '../../src/facade/answer.js';

function gen(pieces: string[], log: string[], fail?: Error): Generation {
  return (async function* () {
    try {
      for (const p of pieces) yield p;
      if (fail) throw fail;
      return {
        usage: {
          promptTokens: 3,
          videoTokens: 5,
          completionTokens: pieces.length,
          totalTokens: 8 + pieces.length,
        },
        finishReason: 'stop' as const,
      };
    } finally {
      log.push('closed');
    }
  })();
}

describe('Answer', () => {
  it('streams pieces and then gives the joined text with usage', async () => {
    const log: string[] = [];
    const a = new Answer(gen(['Hel', 'lo', '!'], log));
    const seen: string[] = [];
    for await (const p of a) seen.push(p);
    assert.deepEqual(seen, ['Hel', 'lo', '!']);
    const r = await a.result();
    assert.equal(r.text, 'Hello!');
    assert.deepEqual(r.usage, { promptTokens: 3, videoTokens: 5, completionTokens: 3, totalTokens: 11 });
    assert.deepEqual(log, ['closed']);
  });

  it('runs the generation by itself when only text() is asked for', async () => {
    assert.equal(await new Answer(gen(['a', 'b'], [])).text(), 'ab');
  });

  it('closes the generation when the reader stops early, and result() then rejects', async () => {
    const log: string[] = [];
    const a = new Answer(gen(['x', 'y', 'z'], log));
    for await (const p of a) if (p === 'x') break;
    assert.deepEqual(log, ['closed']);
    await assert.rejects(a.result(), /not read to its end/);
  });

  it('passes a generation error to the reader and to result()', async () => {
    const a = new Answer(gen(['x'], [], new Error('boom')));
    await assert.rejects(async () => {
      for await (const _ of a);
    }, /boom/);
    await assert.rejects(a.result(), /boom/);
  });

  it('can be iterated only once', async () => {
    const a = new Answer(gen(['x'], []));
    for await (const _ of a);
    await assert.rejects(async () => {
      for await (const _ of a);
    }, /only once/);
  });
});
