/**
 * Writes the needle tokenizer (tokenizer.json, tokenizer_config.json) into a directory, for the trainer.
 *
 *   node --import tsx tools/needle/write_tokenizer.ts /tmp/tok [1|2]   (the version; 1 by default)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';

const [out, v = '1'] = process.argv.slice(2);
if (!out || (v !== '1' && v !== '2')) throw new Error('usage: write_tokenizer.ts <dir> [1|2]');
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'tokenizer.json'),
  `${JSON.stringify(needleTokenizerJson(Number(v) as 1 | 2), null, 2)}\n`,
);
writeFileSync(join(out, 'tokenizer_config.json'), `${JSON.stringify(needleTokenizerConfig(), null, 2)}\n`);
