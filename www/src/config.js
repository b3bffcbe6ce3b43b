// The open-store form <-> the store configuration passed to `SplitStore.open`.

const INTS = ['finality', 'thresholdFinalities', 'boundaryFinalities', 'messageRetention', 'batchSize'];

/**
 * Reads the form. Reports an invalid combination on the form control itself, so the browser
 * shows it next to the field; returns `{ name, config }`.
 */
export function readConfig(form) {
  const f = form.elements;
  const config = { mode: f.mode.value };
  for (const k of INTS) config[k] = Number.parseInt(f[k].value, 10);
  // The sync check is what a node wants; off, the page compacts any head, however old.
  config.syncGapSecs = f.syncCheck.checked ? 60 : null;
  return { name: f.name.value.trim(), config };
}

/** Fills the form from a saved session. */
export function writeConfig(form, { name, config }) {
  const f = form.elements;
  f.name.value = name;
  if (config.mode) f.mode.value = config.mode;
  for (const k of INTS) if (Number.isFinite(config[k])) f[k].value = String(config[k]);
  f.syncCheck.checked = config.syncGapSecs != null;
}

/** Keeps "keep state" within "compact when": the store refuses a boundary past the threshold. */
export function watchConfig(form) {
  const f = form.elements;
  const check = () => {
    const t = Number.parseInt(f.thresholdFinalities.value, 10);
    const b = Number.parseInt(f.boundaryFinalities.value, 10);
    f.boundaryFinalities.setCustomValidity(
      Number.isFinite(t) && Number.isFinite(b) && b > t
        ? 'Keep at most as many finalities of state as the compaction threshold.'
        : '',
    );
  };
  f.thresholdFinalities.addEventListener('input', check);
  f.boundaryFinalities.addEventListener('input', check);
  check();
}
