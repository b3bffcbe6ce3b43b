// Helpers shared by the storage benchmarks in this folder.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The Chromium binary the benchmarks drive (`CHROMIUM` overrides). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The number after `--name` on the command line, or `dflt`. */
export const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
};

/** Bytes of every file under `dir`. */
export function bytesUnder(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? bytesUnder(p) : statSync(p).size;
  }
  return total;
}

/** Chromium's flags for the benchmarks: headless, as in the page tests. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'];

/** The mean of `xs` (0 when empty). */
export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** The median of `xs`. */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Runs `body({ browser, url })` with the page served from this folder and a headless Chromium
 * without a persistent profile; both are closed however `body` ends.
 */
export async function withBrowser(body) {
  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../server.mjs');
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    return await body({ browser, url: server.url });
  } finally {
    await browser.close();
    await server.close();
  }
}

/**
 * Runs `body({ ctx, page, idbDir })` on the demonstration page in headless Chromium with a
 * persistent profile on disk (a temporary directory named after `name`), served from this
 * folder's page; everything is closed and removed afterwards, however `body` ends.
 */
export async function withPagePersisted(name, body) {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../server.mjs');
  const profile = mkdtempSync(join(tmpdir(), `splitstore-${name}-`));
  const server = await startServer({ port: 0 });
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
  });
  try {
    const page = await ctx.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
    return await body({ ctx, page, idbDir: join(profile, 'Default', 'IndexedDB') });
  } finally {
    await ctx.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
