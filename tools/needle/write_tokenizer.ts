/**
 * Writes the needle tokenizer (tokenizer.json, tokenizer_config.json) into a directory, for the trainer.
 *
 *   node --import tsx tools/needle/write_tokenizer.ts /tmp/tok
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';

const out = process.argv[2];
if (!out) throw new Error('usage: write_tokenizer.ts <dir>');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'tokenizer.json'), `${JSON.stringify(needleTokenizerJson(), null, 2)}\n`);
writeFileSync(join(out, 'tokenizer_config.json'), `${JSON.stringify(needleTokenizerConfig(), null, 2)}\n`);
