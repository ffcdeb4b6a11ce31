/** The config.json fixtures under test/fixtures/configs (its README says where each one comes from). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CONFIG_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'configs');

export const configJson = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(CONFIG_FIXTURES, name, 'config.json'), 'utf8'));
