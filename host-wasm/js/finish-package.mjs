// Completes the npm package wasm-pack wrote into a folder: adds the Blockstore entry point
// and sets the package fields bundlers and Node read (exports map, files, side effects,
// dependencies, supported runtimes).
//
//   node host-wasm/js/finish-package.mjs host-wasm/pkg

import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const pkgDir = process.argv[2];
if (!pkgDir) {
  console.error('usage: finish-package.mjs <wasm-pack output folder>');
  process.exit(2);
}

const ENTRIES = ['blockstore.js', 'blockstore.d.ts'];
const LICENSES = ['LICENSE-MIT', 'LICENSE-APACHE'];
// What the Blockstore entry imports (the versions Helia 7 uses); the main entry imports nothing.
const DEPENDENCIES = {
  'interface-blockstore': '^7.0.1',
  'interface-store': '^8.0.0',
  multiformats: '^14.0.0',
};
for (const f of ENTRIES) copyFileSync(join(HERE, f), join(pkgDir, f));
for (const f of LICENSES) copyFileSync(join(HERE, '..', '..', f), join(pkgDir, f));

const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const wasm = 'splitstore_wasm_bg.wasm';
Object.assign(manifest, {
  files: [wasm, 'splitstore_wasm.js', 'splitstore_wasm.d.ts', ...ENTRIES, 'README.md', ...LICENSES],
  exports: {
    '.': { types: './splitstore_wasm.d.ts', default: './splitstore_wasm.js' },
    './blockstore': { types: './blockstore.d.ts', default: './blockstore.js' },
    [`./${wasm}`]: `./${wasm}`,
    './package.json': './package.json',
  },
  // Importing a module runs nothing: the WebAssembly loads when `init()` is called.
  sideEffects: false,
  dependencies: DEPENDENCIES,
});
writeFileSync(join(pkgDir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`finished ${join(pkgDir, 'package.json')}`);
