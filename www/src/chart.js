// The hot/cold size chart: inline SVG drawn from the history samples, redrawn at the
// container's pixel width so text stays readable on narrow screens.

import { formatBytes } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

/** A round axis maximum in bytes: 1, 2, 2.5 or 5 times a power of ten of B, KiB, MiB, ... */
function niceMax(v) {
  if (v <= 1024) return 1024;
  const unit = 1024 ** Math.floor(Math.log(v) / Math.log(1024));
  const x = v / unit;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p * unit;
  return 10 * p * unit;
}

export class SizeChart {
  constructor(container) {
    this.container = container;
    this.samples = [];
    this.pending = false;
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => this.schedule()).observe(container);
    }
  }

  /** Draws `samples` (see History.addSample) on the next animation frame. */
  update(samples) {
    this.samples = samples;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const s = this.samples;
    const width = Math.max(280, Math.floor(this.container.clientWidth || 600));
    const height = width < 500 ? 200 : 260;
    const pad = { l: 64, r: 12, t: 14, b: 30 };
    const w = width - pad.l - pad.r;
    const h = height - pad.t - pad.b;
    const last = s[s.length - 1];
    const compactions = last?.compactions ?? 0;
    const svg = el('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': last
        ? `Hot ${formatBytes(last.hotBytes)}, cold ${formatBytes(last.coldBytes)} at epoch ${last.epoch}; ${compactions} compactions`
        : 'No data yet',
    });
    const yMax = niceMax(Math.max(1024, ...s.map((x) => Math.max(x.hotBytes, x.coldBytes))));
    const x = (i) => pad.l + (s.length <= 1 ? w / 2 : (i / (s.length - 1)) * w);
    const y = (v) => pad.t + h - (v / yMax) * h;

    for (let k = 0; k <= 4; k += 1) {
      const v = (yMax * k) / 4;
      svg.append(el('line', { x1: pad.l, x2: pad.l + w, y1: y(v), y2: y(v), class: 'grid' }));
      svg.append(el('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, formatBytes(v)));
    }
    if (s.length === 0) {
      svg.append(el('text', { x: pad.l + w / 2, y: pad.t + h / 2, 'text-anchor': 'middle', class: 'empty' },
        'Load chain data to see the store grow'));
      this.container.replaceChildren(svg);
      return;
    }

    const ticks = Math.min(s.length, width < 500 ? 4 : 7);
    for (let k = 0; k < ticks; k += 1) {
      const i = ticks === 1 ? 0 : Math.round((k * (s.length - 1)) / (ticks - 1));
      svg.append(el('text', { x: x(i), y: height - 10, 'text-anchor': 'middle', class: 'tick' }, `${s[i].epoch ?? '–'}`));
    }
    svg.append(el('text', { x: pad.l + w, y: height - 0, 'text-anchor': 'end', class: 'axis-label' }, 'head epoch'));

    for (let i = 1; i < s.length; i += 1) {
      if (s[i].compactions > s[i - 1].compactions) {
        svg.append(el('line', { x1: x(i), x2: x(i), y1: pad.t, y2: pad.t + h, class: 'compaction-mark' }));
        const right = x(i) > pad.l + w - 24;
        svg.append(el('text', {
          x: right ? x(i) - 3 : x(i) + 3, y: pad.t + 10, 'text-anchor': right ? 'end' : 'start', class: 'mark-label',
        }, `#${s[i].compactions}`));
      }
    }

    const path = (key) => s.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join('');
    const area = (key) => `${path(key)}L${x(s.length - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z`;
    svg.append(el('path', { d: area('coldBytes'), class: 'area cold' }));
    svg.append(el('path', { d: area('hotBytes'), class: 'area hot' }));
    svg.append(el('path', { d: path('coldBytes'), class: 'line cold' }));
    svg.append(el('path', { d: path('hotBytes'), class: 'line hot' }));

    const legend = el('g', { class: 'legend', transform: `translate(${pad.l + 8},${pad.t + 4})` });
    legend.append(el('rect', { x: 0, y: 0, width: 10, height: 10, class: 'swatch hot' }));
    legend.append(el('text', { x: 14, y: 9 }, 'hot'));
    legend.append(el('rect', { x: 48, y: 0, width: 10, height: 10, class: 'swatch cold' }));
    legend.append(el('text', { x: 62, y: 9 }, 'cold'));
    svg.append(legend);

    this.container.replaceChildren(svg);
  }
}
