// How a page reports to the Playwright test: `window.result` once it is done.
export function report(result) {
  window.result = result;
  document.getElementById('out').textContent = JSON.stringify(result, null, 2);
}

/** Runs `body`, reporting its value, or its error with its causes. */
export async function run(body) {
  try {
    report({ ok: true, ...(await body()) });
  } catch (e) {
    const causes = [];
    for (let c = e; c; c = c.cause) causes.push(`${c.name ?? 'Error'}: ${c.message ?? c}`);
    report({ ok: false, error: causes.join(' <- '), stack: String(e?.stack ?? '') });
  }
}

/** A store name no other test uses. */
export function uniqueName(prefix) {
  return `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
