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
