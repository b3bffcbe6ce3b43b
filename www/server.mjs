// A static file server for the page, bound to 127.0.0.1 only.
//
// Serves this folder (the page and `node_modules/splitstore-wasm`, the package npm links from
// `../host-wasm/pkg-demo`, the package built with the synthetic chain generator). Only GET and HEAD; paths outside the folder are refused.
//
//   node server.mjs [--port 8080]      (or PORT=8080 node server.mjs; port 0 picks a free one)

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('.', import.meta.url));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
};

/** The file a URL path names, or null when it would leave the served folder. */
export function fileFor(urlPath, root = ROOT) {
  let path;
  try {
    path = decodeURIComponent(urlPath.split('?')[0].split('#')[0]);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  if (path.endsWith('/')) path += 'index.html';
  const full = resolve(root, '.' + normalize('/' + path));
  const base = resolve(root);
  return full === base || full.startsWith(base + sep) ? full : null;
}

async function handle(req, res, root) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  const file = fileFor(req.url ?? '/', root);
  if (!file) {
    res.writeHead(403).end('forbidden');
    return;
  }
  try {
    let path = file;
    if ((await stat(path)).isDirectory()) path = join(path, 'index.html');
    const body = await readFile(path);
    res.writeHead(200, {
      'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (e) {
    const missing = e?.code === 'ENOENT' || e?.code === 'ENOTDIR';
    res.writeHead(missing ? 404 : 500, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(missing ? `not found: ${req.url}` : 'server error');
  }
}

/** Starts serving `root` on 127.0.0.1:`port`; resolves to `{ url, close() }`. */
export function startServer({ port = 0, root = ROOT } = {}) {
  const server = createServer((req, res) => {
    handle(req, res, root).catch(() => res.destroy());
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address();
      ok({
        url: `http://127.0.0.1:${bound}/`,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const port = Number(i > 0 ? process.argv[i + 1] : process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`bad port: ${port}`);
    process.exit(2);
  }
  try {
    await stat(join(ROOT, 'node_modules', 'splitstore-wasm', 'splitstore_wasm.js'));
  } catch {
    console.error(
      'node_modules/splitstore-wasm is missing: build the package and install it first:\n' +
        '  wasm-pack build host-wasm --target web --mode no-install --out-dir pkg && npm --prefix www ci',
    );
    process.exit(1);
  }
  const { url } = await startServer({ port });
  console.log(`splitstore page: ${url}`);
}
