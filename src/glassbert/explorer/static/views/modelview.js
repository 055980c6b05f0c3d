/* glassbert explorer, view: attention of every layer × head at once (bertviz's model view), and one attention
   cell (query → key of the chosen head) as a curve over training, so "cat ↔ chase emerges" is something you watch. */
'use strict';
(function () {
  const { $, S, byRole, cfg, drawHeatmap, el, fmt, getTensor, isCurrent, matrixOf, nextGen, sampleInfo, sampleName,
    snapLabel, snapShort, sv, tensorMeta, wiActive } = GB;

  const probsOf = (l) => byRole('attention', l);
  let focusAt = [0, 0];  // the grid's one Tab stop (roving tabindex): the arrows move it, Enter opens that head

  async function renderGrid() {
    const g = nextGen('modelview'), info = sampleInfo();
    const L = cfg('num_hidden_layers', 1), H = cfg('num_attention_heads', 1), box = $('mv-grid');
    const names = Array.from({ length: L }, (_, l) => probsOf(l));
    if (names.some((n) => !n || !tensorMeta(n))) { $('mv-note').textContent = 'this recording lacks some layers\' attention probabilities'; box.innerHTML = ''; return; }
    let ts;
    try { ts = await Promise.all(names.map((n) => getTensor(S.snap, n, S.sample))); }
    catch (e) { if (isCurrent('modelview', g)) $('mv-note').textContent = String(e.message || e); return; }
    if (!isCurrent('modelview', g)) return;
    const width = Math.max(200, ($('modelview-view').clientWidth || 800) - 70);
    const cellPx = Math.max(26, Math.min(72, Math.floor(width / H) - 6));
    box.innerHTML = '';
    box.style.gridTemplateColumns = '3.2em repeat(' + H + ', ' + cellPx + 'px)';
    box.append(el('span'));
    for (let h = 0; h < H; h++) box.append(el('span', { class: 'mv-h' }, 'h' + h));
    for (let l = 0; l < L; l++) {
      box.append(el('span', { class: 'mv-l' }, 'L' + (l + 1)));
      for (let h = 0; h < H; h++) {
        const M = matrixOf(ts[l], ['head', 'token', 'token'], [h], info, S.showPad);
        const on = l === S.layer && h === S.head, stop = l === focusAt[0] && h === focusAt[1];
        const cell = el('div', { class: 'mv-cell' + (on ? ' on' : ''), role: 'gridcell', tabindex: stop ? 0 : -1,
          'data-layer': l, 'data-head': h, 'aria-selected': String(on),
          'aria-label': 'layer ' + (l + 1) + ' head h' + h + (on ? ' (open)' : '') });
        const c = el('canvas');
        drawHeatmap(c, M, GB.attnScale(M.data, 'attention'), { maxW: cellPx, maxH: cellPx, noLabels: true, noValues: true,
          alt: 'layer ' + (l + 1) + ' head h' + h });
        cell.append(c);
        cell.onclick = () => openHead(l, h);
        box.append(cell);
      }
    }
    $('mv-note').textContent = 'attention probabilities · ' + sampleName() + ' · ' + snapLabel(S.snap) + ' · colours: ' +
      (S.attnScale === 'uniform' ? 'relative to uniform 1/' + info.length + ' (white = uniform)' : 'probability 0–1' + (S.stretch ? '' : ' (pick "relative to uniform" in Attention to see weak heads)')) +
      ' · click a head (or Tab to the grid, arrows, Enter) to open it below';
  }
  function openHead(l, h) {
    S.layer = l; S.head = h; focusAt = [l, h];
    GB.update('head');
    GB.saveState();
    $('attention-view').scrollIntoView({ block: 'start' });
  }
  function onGridKey(e) {
    const L = cfg('num_hidden_layers', 1), H = cfg('num_attention_heads', 1);
    const d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[e.key];
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openHead(focusAt[0], focusAt[1]); return; }
    if (!d) return;
    e.preventDefault();
    focusAt = [Math.max(0, Math.min(L - 1, focusAt[0] + d[0])), Math.max(0, Math.min(H - 1, focusAt[1] + d[1]))];
    $('mv-grid').querySelectorAll('.mv-cell').forEach((c) => {
      const here = Number(c.dataset.layer) === focusAt[0] && Number(c.dataset.head) === focusAt[1];
      c.tabIndex = here ? 0 : -1;
      if (here) c.focus();
    });
  }

  // ------------------------------------------------------------------ one cell over training
  function fillCellSelects() {
    const info = sampleInfo(), n = info.length;
    for (const id of ['mv-q', 'mv-k']) {
      const sel = $(id);
      sel.innerHTML = '';
      for (let i = 0; i < n; i++) sel.append(el('option', { value: i }, i + ' ' + info.tokens[i]));
    }
    if (S.cellQ === undefined || S.cellQ >= n) S.cellQ = (info.masked_positions || [])[0] || Math.min(1, n - 1);
    if (S.cellK === undefined || S.cellK >= n) S.cellK = Math.min(n - 1, S.cellQ + 1);
    $('mv-q').value = String(S.cellQ); $('mv-k').value = String(S.cellK);
  }
  async function renderCurve() {
    const g = nextGen('mv-curve'), svg = $('mv-curve');
    const name = probsOf(S.layer), info = sampleInfo(), snaps = S.man.snapshots;
    if (wiActive()) { svg.innerHTML = ''; $('mv-curve-note').textContent = 'the curve follows the recorded samples (a what-if input is one snapshot): choose a sample to see it'; return; }
    if (!name || !tensorMeta(name)) return;
    let ts;
    try { ts = await Promise.all(snaps.map((_, i) => getTensor(i, name, S.sample))); }
    catch (e) { if (isCurrent('mv-curve', g)) $('mv-curve-note').textContent = String(e.message || e); return; }
    if (!isCurrent('mv-curve', g)) return;
    const T = ts[0].shape[1], q = S.cellQ, k = S.cellK;
    const ys = ts.map((t) => t.data[S.head * T * T + q * T + k]);
    const uni = 1 / Math.max(1, info.length), W = 560, Hh = 200, x0 = 46, x1 = W - 12, y0 = 12, y1 = Hh - 30;
    const top = Math.max(uni * 2, ...ys) * 1.1;
    const X = (i) => x0 + (snaps.length > 1 ? (x1 - x0) * (snaps[i][S.xKey] - snaps[0][S.xKey]) / Math.max(1e-9, snaps[snaps.length - 1][S.xKey] - snaps[0][S.xKey]) : 0);
    const Y = (v) => y1 - (y1 - y0) * v / top;
    svg.innerHTML = '';
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + Hh);
    svg.append(sv('line', { x1: x0, y1, x2: x1, y2: y1, class: 'axis' }), sv('line', { x1: x0, y1: y0, x2: x0, y2: y1, class: 'axis' }));
    for (const v of [0, top / 2, top]) svg.append(sv('text', { x: x0 - 4, y: Y(v) + 4, 'text-anchor': 'end' }, fmt(Number(v.toPrecision(2)))));
    svg.append(sv('line', { x1: x0, y1: Y(uni), x2: x1, y2: Y(uni), class: 'uniform' }),
      sv('text', { x: x1, y: Y(uni) - 4, 'text-anchor': 'end' }, 'uniform 1/' + info.length));
    svg.append(sv('path', { d: ys.map((v, i) => (i ? 'L' : 'M') + X(i).toFixed(1) + ' ' + Y(v).toFixed(1)).join(' '), class: 'cell-line' }));
    ys.forEach((v, i) => {
      const dot = sv('circle', { cx: X(i), cy: Y(v), r: i === S.snap ? 6 : 4, class: i === S.snap ? 'now' : '', tabindex: -1 });
      dot.append(sv('title', null, snapShort(i) + ': ' + fmt(v)));
      dot.addEventListener('click', () => GB.selectSnap(i));
      svg.append(dot);
    });
    svg.append(sv('text', { x: (x0 + x1) / 2, y: Hh - 6, 'text-anchor': 'middle' }, S.xKey + ' (click a point to go there)'));
    const tq = info.tokens[q], tk = info.tokens[k];
    $('mv-curve-note').textContent = 'layer ' + (S.layer + 1) + ' · head h' + S.head + ' · "' + tq + '" (query ' + q + ') → "' + tk +
      '" (key ' + k + ') · ' + fmt(ys[0]) + ' at ' + snapShort(0) + ' → ' + fmt(ys[ys.length - 1]) + ' at ' + snapShort(ys.length - 1) +
      ' (' + (ys[ys.length - 1] * info.length).toFixed(1) + '× uniform)';
    $('mv-values').textContent = JSON.stringify({ layer: S.layer, head: S.head, q, k, sample: S.sample, values: ys });
  }

  const HTML = `
    <section class="card" id="modelview-view" data-testid="modelview-view">
      <h2>Attention, every layer × head <span class="sub">bertviz's model view: rows are layers, columns heads; each square is that head's query × key grid</span></h2>
      <div class="note" id="mv-note" data-testid="mv-note"></div>
      <div class="mv-grid" id="mv-grid" data-testid="mv-grid" role="grid" aria-label="attention of every layer and head"></div>
      <h3 class="h3">One attention weight over training <span class="sub">the chosen head (click one above), one query → one key</span></h3>
      <div class="attn-controls">
        <label>Query <select id="mv-q" data-testid="mv-q"></select></label>
        <label>Key <select id="mv-k" data-testid="mv-k"></select></label>
      </div>
      <svg id="mv-curve" data-testid="mv-curve" role="img" aria-label="one attention weight over training"></svg>
      <div class="note" id="mv-curve-note" data-testid="mv-curve-note"></div>
      <pre id="mv-values" data-testid="mv-values" hidden></pre>
    </section>
  `;

  function setup() {
    $('mv-grid').addEventListener('keydown', onGridKey);
    $('mv-q').onchange = () => { S.cellQ = Number($('mv-q').value); renderCurve(); };
    $('mv-k').onchange = () => { S.cellK = Number($('mv-k').value); renderCurve(); };
    fillCellSelects();
  }

  GB.registerView({
    id: 'modelview', html: HTML, setup,
    on: ['boot', 'snap', 'sample', 'whatif', 'whatif-hide', 'pad', 'attn-scale', 'head', 'tour'],
    render(why) {
      if (why === 'sample' || why === 'whatif' || why === 'whatif-hide' || why === 'tour' || why === 'boot') fillCellSelects();
      if (why === 'head') focusAt = [S.layer, S.head];
      renderGrid();
      if (why !== 'attn-scale' && why !== 'pad') renderCurve();
    },
  });
})();
