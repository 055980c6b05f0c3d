/* glassbert explorer, view: the embedding projector (PCA to 2-D, nearest neighbours) */
'use strict';
(function () {
  const { $, S, byRole, catalogue, cfg, el, fmt, getTensor, isCurrent, MAX_CELLS, nextGen, sampleInfo, sampleName,
    snapLabel, sv, tensorMeta, vocabToken, wiActive } = GB;

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
    const labels = [], X = [];
    let d = 0;
    ts.forEach((t, k) => {
      const [info] = infos[k]; d = t.shape[1];
      for (let r = 0; r < info.length; r++) {
        labels.push(info.tokens[r] + (infos.length > 1 ? ' ·' + info.index : ''));
        X.push(Float64Array.from(t.data.subarray(r * d, (r + 1) * d)));
      }
    });
    return { labels, X, d };
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
  function drawProjection(src, V, P, own) {
    const pts = V.X.map((x) => P.axes.map((a) => { let s = 0; for (let j = 0; j < V.d; j++) s += (x[j] - P.mean[j]) * a[j]; return s; }));
    projData = { V, pts };
    const W = 560, H = 420, m = 24;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of pts) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const sx = (x) => m + (x - x0) / ((x1 - x0) || 1) * (W - 2 * m - 60), sy = (y) => H - m - (y - y0) / ((y1 - y0) || 1) * (H - 2 * m);
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
    pts.forEach(([x, y], i) => {
      const c = sv('circle', { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 4, fill: /^\[.*\]/.test(V.labels[i]) ? '#9aa3b8' : '#3457d5',
        class: i === chosen ? 'sel' : '', 'data-i': i, 'data-x': x, 'data-y': y });
      c.append(sv('title', null, V.labels[i] + ' (' + fmt(x) + ', ' + fmt(y) + ')'));
      c.addEventListener('click', () => { tokSel.value = String(i); drawProjection(src, V, P, own); });
      svg.append(c);
      svg.append(sv('text', { x: (sx(x) + 6).toFixed(1), y: (sy(y) + 4).toFixed(1) }, V.labels[i]));
    });
    const where = src.label + ' · ' + (src.key === 'table' ? '' : sampleName() + ' · ') + snapLabel(S.snap);
    svg.setAttribute('aria-label', 'embedding projector, ' + where + ': ' + pts.length + ' points on PC1 × PC2');
    $('proj-stats').textContent = pts.length + ' points · PC1 ' + (100 * P.explained[0]).toFixed(0) + '% and PC2 ' +
      (100 * P.explained[1]).toFixed(0) + '% of the variance ' + (own ? 'at this epoch' : 'at the last snapshot') + ' · ' + snapLabel(S.snap);
    // nearest neighbours by cosine in the full space (not the 2-D picture)
    const q = V.X[chosen], nq = Math.hypot(...q) || 1;
    const sims = V.X.map((x, i) => { let s = 0; for (let j = 0; j < V.d; j++) s += q[j] * x[j]; return [s / nq / (Math.hypot(...x) || 1), i]; })
      .filter((p) => p[1] !== chosen).sort((a, b) => b[0] - a[0]).slice(0, 8);
    const nn = $('proj-nn');
    nn.innerHTML = '';
    for (const [c, i] of sims) nn.append(el('li', { 'data-i': i, 'data-cos': String(c) }, V.labels[i] + '  cos ' + c.toFixed(3)));
  }

  const HTML = `
    <section class="card" id="projector-view" data-testid="projector-view">
      <h2>Embedding projector <span class="sub" id="proj-title">PCA to 2-D, computed by this page from the recorded vectors; follows the epoch slider</span></h2>
      <div class="attn-controls">
        <label>Vectors <select id="proj-source" data-testid="proj-source"></select></label>
        <label class="check"><input type="checkbox" id="proj-own-axes" data-testid="proj-own-axes"> axes of this epoch (else the last snapshot's, so the points move in one frame)</label>
        <button type="button" class="save" data-save="proj-svg">Save SVG</button>
      </div>
      <div class="proj-body">
        <svg id="proj-svg" data-testid="proj-svg" role="img"></svg>
        <div class="proj-side">
          <label>Nearest neighbours of <select id="proj-token" data-testid="proj-token"></select></label>
          <ol id="proj-nn" data-testid="proj-nn" class="mono"></ol>
          <div class="sub" id="proj-stats"></div>
        </div>
      </div>
    </section>
  `;

  function setup() {
    $('proj-source').onchange = renderProjector;
    $('proj-own-axes').onchange = renderProjector;
    $('proj-token').onchange = renderProjector;
  }

  GB.registerView({ id: 'projector', html: HTML, on: ['snap', 'whatif'], setup, render: renderProjector });
})();
