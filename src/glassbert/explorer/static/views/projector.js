/* glassbert explorer, view: the embedding projector (PCA to 2-D, nearest neighbours) */
'use strict';
(function () {
  const { $, S, byRole, catalogue, cfg, el, fmt, getTensor, isClassifier, isCurrent, labelName, MAX_CELLS, nextGen,
    sampleInfo, sampleName, snapLabel, sv, tensorMeta, vocabToken, wiActive } = GB;

  /* The token-embedding table (the rows of the tokens this run uses) or one layer's contextual vectors (every real
     token of every recorded sample, or of the what-if input) in 2-D by PCA, computed here from the recorded
     tensors (so it works in an exported file too). The axes are the last snapshot's principal components unless
     "axes of this epoch" is checked: then the points of two epochs are in two frames. */
  function projSources() {
    const out = [];
    const table = Object.keys(S.man.tensors).find((n) => S.man.tensors[n].label === 'token embedding table');
    if (table) out.push({ key: 'table', name: table, label: 'token embedding table (' + table + ')' });
    const start = byRole('start');
    if (start && tensorMeta(start)) out.push({ key: 'ctx:' + start, name: start, label: 'embeddings (after LayerNorm), per token' });
    for (let l = 0; l < cfg('num_hidden_layers', 1); l++) {
      const e = catalogue().filter((x) => x.layer === l && /(^|\.)output\.layernorm$/.test(x.name) && !/attention\.output/.test(x.name)).pop();
      if (e && tensorMeta(e.name)) out.push({ key: 'ctx:' + e.name, name: e.name, label: 'layer ' + (l + 1) + ' output, per token' });
    }
    return out;
  }
  function tableIds() {
    const v = S.man.vocab;
    const ids = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v).map(Number).sort((a, b) => a - b);
    return ids.filter((i) => !/^\[(PAD|unused\d*)\]$/.test(vocabToken(i)));
  }
  /* {labels, X (n × d, Float64Array rows), d} of the chosen vectors at snapshot ``snap``. */
  async function projVectors(src, snap) {
    if (src.key === 'table') {
      const meta = S.man.tensors[src.name], ids = tableIds(), d = meta.shape[1];
      const big = meta.shape[0] * d > MAX_CELLS;
      const rows = big ? await Promise.all(ids.map((i) => getTensor(snap, src.name, 0, [i, i + 1])))
        : [await getTensor(snap, src.name, 0)];
      const X = ids.map((id, k) => big ? Float64Array.from(rows[k].data) : Float64Array.from(rows[0].data.subarray(id * d, (id + 1) * d)));
      return { labels: ids.map(vocabToken), X, d };
    }
    const infos = wiActive() ? [[sampleInfo(), 0]] : S.man.samples.map((s, i) => [s, i]);
    const ts = await Promise.all(infos.map(([, i]) => getTensor(snap, src.name, i)));
    const labels = [], X = [], samples = [];
    let d = 0;
    ts.forEach((t, k) => {
      const [info, i] = infos[k]; d = t.shape[1];
      for (let r = 0; r < info.length; r++) {
        labels.push(info.tokens[r] + (infos.length > 1 ? ' ·' + info.index : ''));
        X.push(Float64Array.from(t.data.subarray(r * d, (r + 1) * d)));
        samples.push(wiActive() ? null : i);
      }
    });
    return { labels, X, d, samples };
  }
  /* The top two principal axes of the rows of X (power iteration on the covariance, with deflation). */
  function pca2(X, d) {
    const n = X.length, mean = new Float64Array(d);
    for (const x of X) for (let j = 0; j < d; j++) mean[j] += x[j] / n;
    const C = new Float64Array(d * d);
    for (const x of X) for (let i = 0; i < d; i++) { const xi = x[i] - mean[i]; for (let j = 0; j < d; j++) C[i * d + j] += xi * (x[j] - mean[j]) / n; }
    const axes = [];
    for (let k = 0; k < 2; k++) {
      let v = new Float64Array(d).map((_, i) => 1 / Math.sqrt(d) + 1e-3 * ((i * 7919) % 13));
      for (let it = 0; it < 200; it++) {
        const w = new Float64Array(d);
        for (let i = 0; i < d; i++) { let s = 0; for (let j = 0; j < d; j++) s += C[i * d + j] * v[j]; w[i] = s; }
        for (const a of axes) { let dot = 0; for (let i = 0; i < d; i++) dot += w[i] * a[i]; for (let i = 0; i < d; i++) w[i] -= dot * a[i]; }
        const norm = Math.hypot(...w) || 1;
        v = w.map((x) => x / norm);
      }
      axes.push(v);
    }
    let total = 0;
    for (let i = 0; i < d; i++) total += C[i * d + i];
    const explained = axes.map((a) => { let s = 0; for (let i = 0; i < d; i++) { let r = 0; for (let j = 0; j < d; j++) r += C[i * d + j] * a[j]; s += a[i] * r; } return total ? s / total : 0; });
    return { mean, axes, explained };
  }
  const projCache = new Map();
  let projData = null;
  async function renderProjector() {
    const card = $('projector-view'), sel = $('proj-source');
    const sources = projSources();
    card.hidden = !sources.length;
    if (card.hidden) return;
    if (sel.dataset.keys !== sources.map((x) => x.key).join('|')) {
      const keep = sel.value;
      sel.innerHTML = '';
      for (const x of sources) sel.append(el('option', { value: x.key }, x.label));
      sel.dataset.keys = sources.map((x) => x.key).join('|');
      if (sources.some((x) => x.key === keep)) sel.value = keep;
    }
    const src = sources.find((x) => x.key === sel.value) || sources[0];
    const g = nextGen('projector');
    try {
      const now = await projVectors(src, S.snap);
      const last = S.man.snapshots.length - 1, own = $('proj-own-axes').checked || src.key !== 'table' && wiActive();
      const frameKey = [src.key, own ? S.snap : last, wiActive() ? S.whatif.id : 's'].join('|');
      if (!projCache.has(frameKey)) projCache.set(frameKey, pca2(own ? now.X : (await projVectors(src, last)).X, now.d));
      if (!isCurrent('projector', g)) return;
      drawProjection(src, now, projCache.get(frameKey), own);
    } catch (e) {
      if (isCurrent('projector', g)) $('proj-stats').textContent = String(e.message || e);
    }
  }
  /* The view: zoom k about the centre (cx, cy) of the unit square the points span (wheel, the buttons, + − 0
     and the arrows on the focused plot, a drag pans). */
  const zoom = { k: 1, cx: 0.5, cy: 0.5 };
  const W = 560, H = 420, M = 24, PW = W - 2 * M - 60, PH = H - 2 * M;
  /* Colour-blind-safe class colours (Okabe–Ito). */
  const CLASS_RGB = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#000000', '#f0e442'];
  function colourModes(V) {
    const byClass = isClassifier() && V.samples && V.samples.some((i) => i !== null);
    const modes = [['kind', 'word / special token']];
    if (byClass) modes.push(['gold', 'gold label of its sample'], ['pred', 'predicted label of its sample (at this snapshot)']);
    return modes;
  }
  /* The class a point is coloured by (null: none), and whether its sample is misclassified at this snapshot. */
  function pointClass(V, i, mode) {
    const s = V.samples ? V.samples[i] : null;
    if (s === null || s === undefined || mode === 'kind') return { cls: null, wrong: false };
    const gold = S.man.samples[s].label, p = ((S.man.snapshots[S.snap] || {}).predictions || [])[s] || {};
    const wrong = gold !== undefined && p.label_pred !== undefined && p.label_pred !== gold;
    return { cls: mode === 'gold' ? (gold === undefined ? null : gold) : (p.label_pred === undefined ? null : p.label_pred), wrong };
  }
  const charW = 6.7;  // 11 px monospace, where the page cannot measure
  let measure = null;
  function textW(t) {
    if (!measure) {
      measure = document.createElement('canvas').getContext('2d');
      measure.font = '11px ' + (getComputedStyle(document.body).getPropertyValue('--mono').trim() || 'monospace');
    }
    return Math.max(measure.measureText(t).width, t.length * charW);
  }
  const overlaps = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
  /* Points drawn within 2 px of each other are one mark with one label ("[SEP] ·0,1,2"): never printed on top of
     each other. */
  function groupLabel(labels) {
    if (labels.length === 1) return labels[0];
    const parts = labels.map((t) => /^(.*) ·(\d+)$/.exec(t));
    if (parts.every((m) => m && m[1] === parts[0][1])) return parts[0][1] + ' ·' + parts.map((m) => m[2]).join(',');
    return labels[0] + ' (+' + (labels.length - 1) + ')';
  }
  function drawProjection(src, V, P, own) {
    const pts = V.X.map((x) => P.axes.map((a) => { let s = 0; for (let j = 0; j < V.d; j++) s += (x[j] - P.mean[j]) * a[j]; return s; }));
    projData = { src, V, P, own, pts, at: null, screen: null, marks: null, groups: null, groupOf: null };
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of pts) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const sx = (x) => M + ((x - x0) / ((x1 - x0) || 1) - zoom.cx) * zoom.k * PW + PW / 2;
    const sy = (y) => H - M - (((y - y0) / ((y1 - y0) || 1) - zoom.cy) * zoom.k * PH + PH / 2);
    const svg = $('proj-svg');
    svg.innerHTML = '';
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.setAttribute('width', W); svg.setAttribute('height', H);
    const tokSel = $('proj-token');
    if (tokSel.dataset.labels !== V.labels.join('|')) {
      tokSel.innerHTML = '';
      V.labels.forEach((t, i) => tokSel.append(el('option', { value: i }, t)));
      tokSel.dataset.labels = V.labels.join('|');
      const plain = (t) => !/^\[.*\]( ·\d+)?$/.test(t);  // not [UNK] or "[CLS] ·0"
      const first = (ok) => V.labels.findIndex((t) => plain(t) && ok(t));
      const word = [(t) => /\p{L}/u.test(t) && !t.startsWith('##'), (t) => /\p{L}/u.test(t), () => true]  // a word, not "." or "##a"
        .map(first).find((i) => i >= 0);
      tokSel.value = String(word === undefined ? 0 : word);
    }
    const chosen = Math.min(Number(tokSel.value) || 0, V.labels.length - 1);
    projData.at = [sx(pts[chosen][0]), sy(pts[chosen][1])];  // the buttons and keys zoom about the chosen point
    const modeSel = $('proj-colour'), modes = colourModes(V);
    if (modeSel.dataset.modes !== modes.map((m) => m[0]).join('|')) {
      const keep = modeSel.value;
      modeSel.innerHTML = '';
      for (const [k, label] of modes) modeSel.append(el('option', { value: k }, label));
      modeSel.dataset.modes = modes.map((m) => m[0]).join('|');
      modeSel.value = modes.some((m) => m[0] === keep) ? keep : modes[modes.length > 1 ? 1 : 0][0];
    }
    $('proj-colour-wrap').hidden = modes.length < 2;
    const mode = modeSel.value || 'kind';
    // nearest neighbours by cosine in the full space (not the 2-D picture)
    const q = V.X[chosen], nq = Math.hypot(...q) || 1;
    const sims = V.X.map((x, i) => { let s = 0; for (let j = 0; j < V.d; j++) s += q[j] * x[j]; return [s / nq / (Math.hypot(...x) || 1), i]; })
      .filter((p) => p[1] !== chosen).sort((a, b) => b[0] - a[0]).slice(0, 8);
    // the marks: points within 2 px of each other are one group
    const screen = pts.map(([x, y]) => [sx(x), sy(y)]);
    const inside = ([X, Y]) => X >= 0 && X <= W && Y >= 0 && Y <= H;
    const groupOf = new Array(pts.length).fill(-1), groups = [];
    const cellKey = (X, Y) => Math.round(X / 2) + ',' + Math.round(Y / 2), byCell = new Map();
    screen.forEach((p, i) => {
      if (!inside(p)) return;
      const key = cellKey(p[0], p[1]);
      let g = byCell.get(key);
      if (g === undefined) { g = groups.length; groups.push([]); byCell.set(key, g); }
      groups[g].push(i); groupOf[i] = g;
    });
    const marks = new Map();
    let shown = 0;
    pts.forEach(([x, y], i) => {
      if (groupOf[i] < 0) return;  // zoomed out of view
      shown++;
      const { cls, wrong } = pointClass(V, i, mode);
      const fill = cls !== null ? CLASS_RGB[cls % CLASS_RGB.length] : /^\[.*\]/.test(V.labels[i]) ? '#9aa3b8' : '#3457d5';
      const members = groups[groupOf[i]];
      const c = sv('circle', { cx: screen[i][0].toFixed(1), cy: screen[i][1].toFixed(1), r: 4, fill,
        class: (i === chosen ? 'sel' : '') + (wrong && mode === 'pred' ? ' wrong' : ''), 'data-i': i, 'data-x': x, 'data-y': y,
        'data-labelled': '0', ...(cls !== null ? { 'data-class': cls } : {}), ...(V.samples && V.samples[i] !== null ? { 'data-sample': V.samples[i] } : {}) });
      c.append(sv('title', null, members.map((m) => V.labels[m]).join(', ') + ' (' + fmt(x) + ', ' + fmt(y) + ')' +
        (cls !== null ? ' · ' + (mode === 'gold' ? 'gold ' : 'predicted ') + labelName(cls) + (wrong ? ' · misclassified' : '') : '')));
      c.addEventListener('click', () => { tokSel.value = String(i); drawProjection(src, V, P, own); });
      c.addEventListener('mouseenter', () => focusLabel(i));
      c.addEventListener('mouseleave', () => focusLabel(document.activeElement === svg && kbFocus !== null && projData.marks.has(kbFocus) ? kbFocus : null));
      svg.append(c);
      marks.set(i, c);
    });
    Object.assign(projData, { screen, marks, groups, groupOf, chosen, placed: [] });
    // labels: the chosen point's first, then its neighbours', then words, then special tokens; one that would
    // overlap a label already placed (or leave the plot) is skipped: hover shows it, the list above chooses it
    const nnSet = new Set(sims.map((p) => p[1]));
    const rank = (i) => i === chosen ? 0 : nnSet.has(i) ? 1 : /^\[.*\]/.test(V.labels[i]) ? 3 : 2;
    const heads = groups.map((g) => g.includes(chosen) ? chosen : g[0]).sort((a, b) => rank(a) - rank(b) || a - b);
    const placed = [];  // {box, el}: the labels drawn
    let skipped = 0;
    for (const i of heads) {
      const text = groupLabel(groups[groupOf[i]].map((m) => V.labels[m])), w = textW(text), [X, Y] = screen[i];
      const spot = labelSpots(X, Y, w, 4).find((sp) => inPlot(sp.box) && !placed.some((b) => overlaps(b.box, sp.box)));
      if (!spot) { skipped++; continue; }
      const t = sv('text', { x: spot.x.toFixed(1), y: spot.y.toFixed(1), 'text-anchor': spot.anchor, class: i === chosen ? 'sel' : '',
        'data-g': groupOf[i] }, text);
      svg.append(t);
      placed.push({ box: spot.box, el: t });
      for (const m of groups[groupOf[i]]) marks.get(m).dataset.labelled = m === i ? '1' : 'group';
    }
    projData.placed = placed;
    if (kbFocus !== null && marks.has(kbFocus)) focusPoint(kbFocus); else kbFocus = null;  // after the labels: it avoids them
    const where = src.label + ' · ' + (src.key === 'table' ? '' : sampleName() + ' · ') + snapLabel(S.snap);
    svg.setAttribute('aria-label', 'embedding projector, ' + where + ': ' + pts.length + ' points on PC1 × PC2' +
      (zoom.k > 1 ? ', zoomed ×' + zoom.k.toFixed(1) : ''));
    $('proj-stats').textContent = pts.length + ' points · PC1 ' + (100 * P.explained[0]).toFixed(0) + '% and PC2 ' +
      (100 * P.explained[1]).toFixed(0) + '% of the variance ' + (own ? 'at this epoch' : 'at the last snapshot') + ' · ' + snapLabel(S.snap) +
      (zoom.k > 1 ? ' · zoom ×' + zoom.k.toFixed(1) + ', ' + shown + ' in view' : '') +
      (skipped ? ' · ' + skipped + ' labels left out where they would overlap (hover a point, or choose it below)' : '');
    drawLegend(V, mode);
    const nn = $('proj-nn');
    nn.innerHTML = '';
    for (const [c, i] of sims) nn.append(el('li', { 'data-i': i, 'data-cos': String(c) }, V.labels[i] + '  cos ' + c.toFixed(3)));
  }
  /* Keyboard: the arrows move a focus ring to the nearest point that way, Enter chooses it (as a click does),
     Shift+arrows pan a zoomed picture; the focused point's name is said in #proj-focus (aria-live). */
  let kbFocus = null;
  function focusPoint(i) {
    const d = projData, svg = $('proj-svg');
    for (const c of svg.querySelectorAll('circle.kb')) c.classList.remove('kb');
    kbFocus = i;
    const mark = d.marks.get(i);
    if (!mark) return;
    mark.classList.add('kb');
    svg.append(mark);  // on top of its neighbours
    const text = groupLabel(d.groups[d.groupOf[i]].map((m) => d.V.labels[m]));
    focusLabel(i);
    svg.dataset.focus = String(i);
    $('proj-focus').textContent = 'point ' + text + (i === d.chosen ? ' (chosen)' : ': Enter chooses it');
  }
  function stepFocus(dx, dy) {
    const d = projData;
    if (!d || !d.marks) return;
    const from = kbFocus !== null && d.marks.has(kbFocus) ? kbFocus : d.marks.has(d.chosen) ? d.chosen : d.marks.keys().next().value;
    if (from === undefined) return;
    if (kbFocus === null) { focusPoint(from); return; }
    const [X, Y] = d.screen[from];
    let best = null, bestScore = Infinity;
    for (const i of d.marks.keys()) {
      if (d.groupOf[i] === d.groupOf[from]) continue;  // one mark per group: step past the coincident ones
      const ex = d.screen[i][0] - X, ey = d.screen[i][1] - Y, along = ex * dx + ey * dy, across = Math.abs(ex * dy - ey * dx);
      if (along <= 0) continue;
      const score = along + 2 * across;  // straight ahead first
      if (score < bestScore) { bestScore = score; best = i; }
    }
    if (best !== null) focusPoint(d.groups[d.groupOf[best]][0]);
  }
  /* Where a label of width ``w`` may go beside the point at (X, Y), in order of preference: right, left, above,
     below (the labels' own ``n`` places), then the four corners. Each spot: {x, y, anchor, box}; the box holds
     11 px type and a margin. */
  function labelSpots(X, Y, w, n) {
    const spots = [[X + 6, Y + 4, 'start'], [X - 6, Y + 4, 'end'], [X - w / 2, Y - 8, 'start'], [X - w / 2, Y + 15, 'start'],
      [X + 6, Y - 8, 'start'], [X - 6, Y - 8, 'end'], [X + 6, Y + 16, 'start'], [X - 6, Y + 16, 'end']].slice(0, n || 8);
    return spots.map(([x, y, anchor]) => {
      const bx = anchor === 'end' ? x - w : x;
      return { x, y, anchor, box: { x0: bx - 1, x1: bx + w + 1, y0: y - 11, y1: y + 3.5 } };
    });
  }
  const inPlot = (b) => b.x0 >= 0 && b.x1 <= W && b.y0 >= 0 && b.y1 <= H;
  /* The focused or hovered point's name (null: none). A point with a label of its own: that label, emphasised,
     and nothing drawn over it. One whose label was left out: its name at the first spot beside it that stays in
     the plot clear of every label drawn; where none is clear, the labels it covers are hidden while it shows. */
  function focusLabel(i) {
    const svg = $('proj-svg'), d = projData;
    const old = svg.querySelector('text.hover');
    if (old) old.remove();
    for (const t of svg.querySelectorAll('text.focus, text.covered')) t.classList.remove('focus', 'covered');
    if (i === null || !d || !d.screen || d.groupOf[i] < 0) return;
    const g = d.groupOf[i], own = (d.placed || []).find((p) => p.el.dataset.g === String(g));
    if (own) { own.el.classList.add('focus'); return; }
    const text = groupLabel(d.groups[g].map((m) => d.V.labels[m])), w = textW(text), [X, Y] = d.screen[i];
    const spots = labelSpots(X, Y, w), placed = d.placed || [];
    const spot = spots.find((sp) => inPlot(sp.box) && !placed.some((p) => overlaps(p.box, sp.box))) || spots.find((sp) => inPlot(sp.box)) || spots[0];
    for (const p of placed) if (overlaps(p.box, spot.box)) p.el.classList.add('covered');
    svg.append(sv('text', { x: spot.x.toFixed(1), y: spot.y.toFixed(1), 'text-anchor': spot.anchor, class: 'hover', 'data-g': g }, text));
  }
  function drawLegend(V, mode) {
    const box = $('proj-legend');
    box.innerHTML = '';
    if (mode === 'kind') return;
    const n = Math.max(0, ...S.man.snapshots.flatMap((x) => (x.predictions || []).map((p) => (p.label_probs || []).length)));
    for (let c = 0; c < n; c++) {
      const dot = el('span', { class: 'dot' }), item = el('span', { class: 'item', 'data-class': c });
      dot.style.background = CLASS_RGB[c % CLASS_RGB.length];
      item.append(dot, labelName(c));
      box.append(item);
    }
    if (mode === 'pred') box.append(el('span', { class: 'item' }, '◯ dark ring: its sample is misclassified at this snapshot'));
  }
  function redrawProj() { if (projData) drawProjection(projData.src, projData.V, projData.P, projData.own); }
  /* Zoom by ``f`` keeping the unit-square point under (X, Y) of the plot (default: its centre) where it is. */
  function zoomBy(f, X, Y) {
    const k = Math.max(1, Math.min(64, zoom.k * f));
    if (X === undefined) {
      const c = projData && projData.at, ok = c && c[0] >= M && c[0] <= M + PW && c[1] >= M && c[1] <= H - M;
      [X, Y] = ok ? c : [M + PW / 2, H - M - PH / 2];
    }
    const u = zoom.cx + (X - M - PW / 2) / (zoom.k * PW), v = zoom.cy + (H - M - Y - PH / 2) / (zoom.k * PH);
    zoom.cx = k === 1 ? 0.5 : u - (X - M - PW / 2) / (k * PW);
    zoom.cy = k === 1 ? 0.5 : v - (H - M - Y - PH / 2) / (k * PH);
    zoom.k = k;
    redrawProj();
  }
  function pan(dx, dy) { if (zoom.k > 1) { zoom.cx += dx / zoom.k; zoom.cy += dy / zoom.k; redrawProj(); } }
  function resetZoom() { zoom.k = 1; zoom.cx = 0.5; zoom.cy = 0.5; }

  const HTML = `
    <section class="card" id="projector-view" data-testid="projector-view">
      <h2>Embedding projector <span class="sub" id="proj-title">PCA to 2-D, computed by this page from the recorded vectors; follows the epoch slider</span></h2>
      <div class="attn-controls">
        <label>Vectors <select id="proj-source" data-testid="proj-source"></select></label>
        <label class="check"><input type="checkbox" id="proj-own-axes" data-testid="proj-own-axes"> axes of this epoch (else the last snapshot's, so the points move in one frame)</label>
        <label id="proj-colour-wrap" hidden>Colour by <select id="proj-colour" data-testid="proj-colour"></select></label>
        <span class="proj-zoom" role="group" aria-label="zoom">
          <button type="button" id="proj-zoom-in" aria-label="zoom in" title="zoom in (+ on the plot, or the wheel)">+</button><button type="button" id="proj-zoom-out" aria-label="zoom out" title="zoom out (− on the plot)">−</button><button type="button" id="proj-zoom-reset" title="the whole picture (0 on the plot)">reset</button>
        </span>
        <button type="button" class="save" data-save="proj-svg">Save SVG</button>
      </div>
      <div class="proj-legend" id="proj-legend" data-testid="proj-legend"></div>
      <div class="proj-body">
        <svg id="proj-svg" data-testid="proj-svg" role="img" tabindex="0" aria-describedby="proj-keys" aria-keyshortcuts="ArrowLeft ArrowRight ArrowUp ArrowDown Enter Shift+ArrowLeft + - 0"></svg>
        <div class="proj-side">
          <label>Nearest neighbours of <select id="proj-token" data-testid="proj-token"></select></label>
          <ol id="proj-nn" data-testid="proj-nn" class="mono"></ol>
          <div class="sub" id="proj-stats"></div>
          <div class="sub" id="proj-keys">On the plot: the arrows move between points, Enter chooses one, + − 0 zoom, Shift+arrows pan.</div>
          <div class="mono" id="proj-focus" data-testid="proj-focus" aria-live="polite"></div>
        </div>
      </div>
    </section>
  `;

  function setup() {
    $('proj-source').onchange = () => { resetZoom(); renderProjector(); };
    $('proj-own-axes').onchange = renderProjector;
    $('proj-token').onchange = renderProjector;
    $('proj-colour').onchange = redrawProj;
    $('proj-zoom-in').onclick = () => zoomBy(2);
    $('proj-zoom-out').onclick = () => zoomBy(0.5);
    $('proj-zoom-reset').onclick = () => { resetZoom(); redrawProj(); };
    const svg = $('proj-svg');
    const at = (evt) => {  // the plot's own coordinates (the SVG is scaled down on a narrow screen)
      const r = svg.getBoundingClientRect();
      return [(evt.clientX - r.left) * W / (r.width || W), (evt.clientY - r.top) * H / (r.height || H)];
    };
    svg.addEventListener('wheel', (evt) => { evt.preventDefault(); const [X, Y] = at(evt); zoomBy(evt.deltaY < 0 ? 1.25 : 0.8, X, Y); }, { passive: false });
    svg.addEventListener('keydown', (evt) => {
      const step = 0.1, arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[evt.key];
      const act = arrows ? (evt.shiftKey ? () => pan(step * arrows[0], -step * arrows[1]) : () => stepFocus(arrows[0], arrows[1])) : {
        '+': () => zoomBy(2), '=': () => zoomBy(2), '-': () => zoomBy(0.5), '0': () => { resetZoom(); redrawProj(); },
        Enter: () => { if (kbFocus !== null) { $('proj-token').value = String(kbFocus); redrawProj(); } },
        ' ': () => { if (kbFocus !== null) { $('proj-token').value = String(kbFocus); redrawProj(); } },
        Escape: () => { kbFocus = null; redrawProj(); $('proj-focus').textContent = ''; } }[evt.key];
      if (act) { evt.preventDefault(); act(); }
    });
    svg.addEventListener('blur', () => { for (const c of svg.querySelectorAll('circle.kb')) c.classList.remove('kb'); focusLabel(null); });
    let drag = null;  // a drag pans the zoomed picture
    svg.addEventListener('pointerdown', (evt) => { if (zoom.k > 1 && evt.target === svg) { drag = at(evt); svg.setPointerCapture(evt.pointerId); } });
    svg.addEventListener('pointermove', (evt) => {
      if (!drag) return;
      const [X, Y] = at(evt);
      zoom.cx -= (X - drag[0]) / (zoom.k * PW); zoom.cy += (Y - drag[1]) / (zoom.k * PH);
      drag = [X, Y]; redrawProj();
    });
    svg.addEventListener('pointerup', () => { drag = null; });
  }

  GB.registerView({ id: 'projector', html: HTML, on: ['snap', 'whatif'], setup, render: renderProjector });
})();
