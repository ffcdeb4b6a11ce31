/**
 * The web UI in a real browser: Debian's Chromium (apt-get install chromium) driven by playwright-core,
 * headless with a fresh profile, and a server on the shipped tiny Vamba (or the model at `modelPath`) with a
 * media root. Used by the UI tests and by tools/ui-screenshots.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { VideoLM } from '../../src/facade/video-lm.js';
import { createServer, type LongshotServer, type ServeOptions } from '../../src/serve/index.js';

export const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Compiles the page's scripts (web/ → dist/web/) as `npm run build` does. */
export function buildPage(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'web/tsconfig.json']);
}

export interface UiSession {
  server: LongshotServer;
  model: VideoLM;
  url: string;
  browser: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function openUi(
  opts: ServeOptions,
  viewport = { width: 1360, height: 860 },
  modelPath?: string,
): Promise<UiSession> {
  buildPage();
  const model = await (modelPath ? VideoLM.load(modelPath, { device: 'cpu' }) : VideoLM.load());
  const server = createServer(model, opts);
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  const profile = mkdtempSync(join(tmpdir(), 'longshot-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  return {
    server,
    model,
    url,
    browser,
    page,
    async close() {
      await browser.close();
      await server.close();
      model.dispose();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens `path` from the library and waits until it is encoded and the question box is ready. */
export async function openVideo(page: Page, path: string): Promise<void> {
  await page.waitForFunction(
    (p) =>
      Array.from(document.querySelectorAll('#library option')).some(
        (o) => (o as HTMLOptionElement).value === p,
      ),
    path,
  );
  await page.selectOption('#library', path);
  await page.click('#open');
  await page.waitForSelector('#question:not([disabled])', { timeout: 120_000 });
}

/** Asks a question and waits for the answer and its timeline; returns the answer's text. */
export async function ask(page: Page, question: string): Promise<string> {
  const before = await page.locator('.msg.assistant .meta').count();
  await page.fill('#question', question);
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.msg.assistant .meta').length > n, before, {
    timeout: 120_000,
  });
  return (await page.locator('.msg.assistant .text').last().textContent()) ?? '';
}
