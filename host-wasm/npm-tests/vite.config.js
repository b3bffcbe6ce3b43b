// One page per scenario, built as a user's app would be: the package comes from
// node_modules (installed from the packed tarball), the WebAssembly as a hashed asset.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    rollupOptions: {
      input: { contract: here('contract.html'), helia: here('helia.html'), worker: here('worker.html') },
    },
  },
  worker: { format: 'es' },
  resolve: {
    // interface-blockstore-tests imports aegir's chai (see src/aegir-chai.js).
    alias: { 'aegir/chai': here('src/aegir-chai.js') },
  },
});
