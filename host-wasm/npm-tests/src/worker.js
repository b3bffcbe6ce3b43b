// Starts the worker and reports what it found.
import { report, uniqueName } from './report.js';

const worker = new Worker(new URL('./worker-store.js', import.meta.url), { type: 'module' });
worker.onmessage = ({ data }) => report(data);
worker.onerror = (e) => report({ ok: false, error: `worker failed: ${e.message}` });
worker.postMessage({ name: uniqueName('worker') });
