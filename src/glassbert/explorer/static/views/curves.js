/* glassbert explorer, view: the training curves of metrics.jsonl, a marker at the snapshot shown */
'use strict';
(function () {
  const { $, S, el, fmt, niceTicks, sv } = GB;

  const PALETTE = ['#3457d5', '#e0761a', '#1a8f4f', '#c8382f', '#7a4fd6', '#0f8b9a', '#b0831c', '#d14d8f'];

  function renderCurves() {
    const box = $('curves');
    box.innerHTML = '';
    const rows = S.metrics || [];
    if (!rows.length) { box.append(el('div', { class: 'muted' }, 'no metrics file in this run')); return; }
    const xKey = rows.some((r) => typeof r.step === 'number') ? 'step' : rows.some((r) => typeof r.epoch === 'number') ? 'epoch' : null;
    $('curves-sub').textContent = rows.length + ' rows · x = ' + (xKey || 'row');
    const skip = new Set(['step', 'epoch', 'time', 'elapsed', 'wall', 'timestamp', 'samples', 'tokens']);
    const keys = new Set();
    for (const r of rows) for (const k in r) if (typeof r[k] === 'number' && !skip.has(k)) keys.add(k);
    const groups = [['loss', [...keys].filter((k) => /loss|ppl|perplex/i.test(k))],
      ['accuracy', [...keys].filter((k) => /acc|f1|exact/i.test(k))]];
    const used = new Set(groups.flatMap((g) => g[1]));
    for (const k of [...keys].filter((k) => !used.has(k))) groups.push([k, [k]]);  // lr, grad norm, tokens/s: each its own axis
    const snap = S.man.snapshots[S.snap];
    const marker = snap ? (xKey === 'epoch' ? snap.epoch : snap.step) : null;
    for (const [title, ks] of groups) if (ks.length) box.append(lineChart(title, rows, xKey, ks, marker, title === 'loss' && $('curves-log').checked));
  }

  function lineChart(title, rows, xKey, keys, marker, log) {
    const W = 560, H = 190, R = 14, T = 24, B = 30;
    const svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'xMidYMid meet', 'data-chart': title, role: 'img' });
    const xs = rows.map((r, i) => (xKey && typeof r[xKey] === 'number' ? r[xKey] : i));
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    if (x1 === x0) x1 = x0 + 1;
    let y0 = Infinity, y1 = -Infinity;
    const ok = (v) => typeof v === 'number' && Number.isFinite(v) && (!log || v > 0);
    for (const r of rows) for (const k of keys) if (ok(r[k])) { y0 = Math.min(y0, r[k]); y1 = Math.max(y1, r[k]); }
    if (y0 === Infinity) return svg;
    if (title === 'accuracy') { y0 = Math.min(0, y0); y1 = Math.max(1, y1); }
    const f = log ? Math.log10 : (v) => v;
    let t0 = f(y0), t1 = f(y1);
    if (t1 === t0) {  // a constant (the demo's learning rate): drawn at mid-height on an axis that shows its value
      if (log) { t0 -= 1; t1 += 1; } else if (t0 === 0) { t1 = 1; } else { const a = Math.abs(t0); t0 -= a; t1 += a; }
    }
    if (title === 'loss' && !log) t0 = Math.min(0, t0);
    const yticks = log ? niceTicks(Math.floor(t0), Math.ceil(t1), 4).filter((v) => Number.isInteger(v)) : niceTicks(t0, t1, 4);
    if (log) { t0 = Math.min(t0, yticks[0]); t1 = Math.max(t1, yticks[yticks.length - 1]); }
    const label = (v) => (log ? (v < -2 || v > 4 ? '1e' + v : fmt(Math.pow(10, v))) : fmt(v));  // a decade: 0.01, 1e-4
    const L = 14 + 6.2 * Math.max(...yticks.map((v) => label(v).length));
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => T + (1 - (f(y) - t0) / (t1 - t0)) * (H - T - B);
    const Yt = (t) => T + (1 - (t - t0) / (t1 - t0)) * (H - T - B);
    for (const t of yticks) {
      svg.append(sv('line', { class: 'grid', x1: L, x2: W - R, y1: Yt(t), y2: Yt(t) }));
      svg.append(sv('text', { x: L - 4, y: Yt(t) + 3, 'text-anchor': 'end' }, label(t)));
    }
    svg.append(sv('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    for (const xv of niceTicks(x0, x1, 5)) svg.append(sv('text', { x: X(xv), y: H - B + 13, 'text-anchor': 'middle' }, String(xv)));
    svg.append(sv('text', { x: W - R, y: H - 3, 'text-anchor': 'end' }, xKey || 'row'));
    svg.append(sv('text', { class: 'ttl', x: 4, y: 14 }, title + (log ? ' (log scale)' : '')));
    keys.forEach((k, ki) => {
      let d = '', pts = 0;
      rows.forEach((r, i) => { if (ok(r[k])) { d += (d ? 'L' : 'M') + X(xs[i]).toFixed(1) + ',' + Y(r[k]).toFixed(1); pts++; } });
      const colour = PALETTE[ki % PALETTE.length];
      const path = sv('path', { d, stroke: colour, 'data-key': k });
      path.append(sv('title', null, k));
      svg.append(path);
      if (pts <= 20) rows.forEach((r, i) => { if (ok(r[k])) svg.append(sv('circle', { cx: X(xs[i]), cy: Y(r[k]), r: 2.5, fill: colour })); });
      const lx = W - R - 110 * (keys.length - ki);
      svg.append(sv('rect', { x: lx, y: 6, width: 12, height: 4, fill: colour }));
      svg.append(sv('text', { x: lx + 16, y: 12 }, k));
    });
    if (marker !== null && marker >= x0 && marker <= x1) svg.append(sv('line', { class: 'marker', x1: X(marker), x2: X(marker), y1: T, y2: H - B }));
    svg.setAttribute('aria-label', title + ' over ' + (xKey || 'rows') + ' (' + rows.length + ' points): ' + keys.map((k) => {
      const last = rows.filter((r) => ok(r[k])).pop();
      return k + (last ? ' ends at ' + fmt(last[k]) : '');
    }).join(', '));
    return svg;
  }

  const HTML = `
    <section class="card" id="curves-panel">
      <h2>Training curves <span class="sub" id="curves-sub"></span></h2>
      <label class="check"><input type="checkbox" id="curves-log" checked> log scale for losses</label>
      <div id="curves"></div>
    </section>
  `;

  function setup() {
    $('curves-panel').hidden = !S.metrics.length;
    $('curves-log').onchange = renderCurves;
  }

  GB.registerView({ id: 'curves', html: HTML, row: 'two-col wide-left', on: ['snap'], setup, render: renderCurves });
})();
