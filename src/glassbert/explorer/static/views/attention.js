/* glassbert explorer, view: attention per layer and head (heatmap, head view, neuron view) */
'use strict';
(function () {
  const { $, S, attachHover, attnName, catalogue, cfg, colorbar, drawHeatmap, el, fmt, getTensor, isCurrent,
    KIND_LABEL, matrixOf, nextGen, notRecordedWhy, sampleInfo, sampleName, scaleFor, snapLabel, statsText, sv,
    tensorMeta, wiActive } = GB;

  let attnMapper = null, attnM = null;

  function setupAttentionControls() {
    const ls = $('layer-select'), hs = $('head-select');
    ls.innerHTML = ''; hs.innerHTML = '';
    for (let l = 0; l < cfg('num_hidden_layers', 1); l++) {
      const at = catalogue().find((e) => e.role === 'attention' && e.layer === l);
      const where = at ? /^(.*?layers?\.\d+)/.exec(at.module.slice((S.man.prefix || '').length)) : null;
      ls.append(el('option', { value: l }, 'Layer ' + (l + 1) + (where ? ' (' + where[1] + ')' : '')));
    }
    for (let h = 0; h < cfg('num_attention_heads', 1); h++) hs.append(el('option', { value: h }, 'Head h' + h));
    ls.onchange = () => { S.layer = Number(ls.value); GB.update('head'); GB.saveState(); };
    hs.onchange = () => { S.head = Number(hs.value); GB.update('head'); GB.saveState(); };
    $('attn-kind').onchange = () => {
      S.kind = $('attn-kind').value;
      // the mask step is visible by default: the scores show their [PAD] keys (−∞ once masked)
      if (S.kind !== 'attention' && !S.showPad) { GB.setShowPad(true); return; }
      renderAttention(); GB.saveState();
    };
    $('attn-scale').onchange = () => { S.attnScale = $('attn-scale').value; GB.update('attn-scale'); GB.saveState(); };
    for (const o of $('attn-kind').options) o.disabled = !catalogue().some((e) => e.role === o.value);
    $('show-pad').onchange = () => GB.setShowPad($('show-pad').checked);
  }

  /* Probabilities on the fixed 0–1 scale (uniform attention reads as dark, not as "maximum"), unless the
     user stretches them to this head's max; scores on a symmetric scale around 0. */
  function attnScale(data, kind) {
    if ((kind || S.kind) !== 'attention') return scaleFor(data, true);
    if (S.attnScale === 'uniform') {  // relative to uniform attention over the real (non-[PAD]) keys: white = 1/n
      const n = Math.max(1, sampleInfo().length);
      return { diverging: true, uniform: n, span: 2, vmin: 0, vmax: 1, lo: 0, hi: 1, clipped: false };
    }
    if (!S.stretch) return { diverging: false, vmin: 0, vmax: 1, lo: 0, hi: 1, clipped: false };
    const sc = scaleFor(data, false);
    return Object.assign(sc, { vmin: 0, clipped: false });
  }

  async function renderAttention() {
    const g = nextGen('attention');
    $('layer-select').value = String(S.layer);
    $('head-select').value = String(S.head);
    const name = attnName();
    const info = sampleInfo();
    if (!tensorMeta(name)) { $('attention-hover').textContent = notRecordedWhy(name); return; }
    try {
      const t = await getTensor(S.snap, name, S.sample);
      const probsName = attnName('attention');
      const pt = S.kind === 'attention' ? t : (tensorMeta(probsName) ? await getTensor(S.snap, probsName, S.sample) : null);
      if (!isCurrent('attention', g)) return;
      const nh = t.shape[0];
      // thumbnails: every head of this layer
      const thumbs = $('head-thumbs');
      thumbs.innerHTML = '';
      for (let h = 0; h < nh; h++) {
        const Mh = matrixOf(t, ['head', 'token', 'token'], [h], info, S.showPad);
        const box = el('div', { class: 'thumb' + (h === S.head ? ' on' : ''), 'data-head': h, tabindex: 0, role: 'button',
          'aria-pressed': String(h === S.head), 'aria-label': 'head h' + h + ' of layer ' + (S.layer + 1) });
        const c = el('canvas');
        drawHeatmap(c, Mh, attnScale(Mh.data), { maxW: 72, maxH: 72, noLabels: true, noValues: true,
          alt: 'head h' + h + ' of layer ' + (S.layer + 1) });
        box.append(c, el('span', null, 'h' + h));
        box.onclick = () => { S.head = h; GB.update('head'); GB.saveState(); };
        box.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); box.onclick(); } };
        thumbs.append(box);
      }
      const M = matrixOf(t, ['head', 'token', 'token'], [S.head], info, S.showPad);
      M.rowName = 'query'; M.colName = 'key';
      attnM = M;
      const sc = attnScale(M.data);
      const where = 'layer ' + (S.layer + 1) + ' · head h' + S.head + ' · ' + sampleName() + ' · ' + snapLabel(S.snap);
      $('attention-title').textContent = KIND_LABEL[S.kind] + ' · ' + where;
      attnMapper = drawHeatmap($('attention-canvas'), M, sc, { maxW: Math.min(620, $('attention-view').clientWidth - 40), maxH: 620,
        rowTitle: 'query', colTitle: 'key', alt: KIND_LABEL[S.kind] + ', ' + where });
      colorbar($('attention-colorbar'), sc);
      const values = [];
      for (let r = 0; r < M.rows; r++) values.push(Array.from(M.data.subarray(r * M.cols, (r + 1) * M.cols)));
      const snap = S.man.snapshots[S.snap];
      $('attention-values').textContent = JSON.stringify({
        name, snap: S.snap, epoch: snap.epoch, step: snap.step, sample: S.sample, layer: S.layer, head: S.head,
        whatif: wiActive() ? S.whatif.id : null,
        kind: S.kind, tokens: M.rowLabels, values });
      const cv = $('attention-canvas');
      cv.dataset.layer = S.layer; cv.dataset.head = S.head; cv.dataset.snap = S.snap;
      $('attention-hover').textContent = where + ' · ' + statsText(M.data);
      if (pt) drawHeadView(matrixOf(pt, ['head', 'token', 'token'], [S.head], info, S.showPad), where);
      renderNeuron();
    } catch (e) {
      if (isCurrent('attention', g)) $('attention-hover').textContent = String(e.message || e);
    }
  }

  /* bertviz's neuron view: for one query token, q·k of every key split into its head_dim products q_d·k_d;
     the last column is the score they add up to, ÷√d (the scaled score the softmax sees before the mask). */
  let neuronMapper = null, neuronM = null;
  async function renderNeuron() {
    const box = $('neuron-details');
    const probs = attnName('attention');
    if (!box.open || !probs) return;
    const base = probs.replace(/probs$/, ''), qn = base + 'query', kn = base + 'key';
    if (!tensorMeta(qn) || !tensorMeta(kn)) { $('neuron-hover').textContent = notRecordedWhy(tensorMeta(qn) ? kn : qn); return; }
    const g = nextGen('neuron'), info = sampleInfo();
    const [q, k] = await Promise.all([getTensor(S.snap, qn, S.sample), getTensor(S.snap, kn, S.sample)]);
    if (!isCurrent('neuron', g)) return;
    const [, T, d] = q.shape, n = S.showPad ? T : Math.min(T, info.length);
    const sel = $('neuron-query');
    if (sel.options.length !== n) {
      sel.innerHTML = '';
      for (let i = 0; i < n; i++) sel.append(el('option', { value: i }, i + ' ' + info.tokens[i]));
    }
    S.neuronQuery = Math.min(S.neuronQuery, n - 1);
    sel.value = String(S.neuronQuery);
    const qi = S.head * T * d + S.neuronQuery * d, data = new Float32Array(n * (d + 1));
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < d; c++) { const v = q.data[qi + c] * k.data[S.head * T * d + j * d + c]; data[j * (d + 1) + c] = v; sum += v; }
      data[j * (d + 1) + d] = sum / Math.sqrt(d);
    }
    neuronM = { rows: n, cols: d + 1, data, rowLabels: info.tokens.slice(0, n),
      colLabels: Array.from({ length: d }, (_, c) => 'q' + c + '·k' + c).concat(['Σ ÷ √d']), rowName: 'key', colName: 'dimension' };
    const sc = scaleFor(data, true);
    neuronMapper = drawHeatmap($('neuron-canvas'), neuronM, sc, { maxW: Math.min(900, $('attention-view').clientWidth - 40), maxH: 560,
      rowTitle: 'key', colTitle: 'q × k per dimension', alt: 'neuron view of query ' + info.tokens[S.neuronQuery] });
    colorbar($('neuron-colorbar'), sc);
  }

  const TOP_LINKS = 3;
  function drawHeadView(M, where) {
    const svg = $('head-view');
    svg.innerHTML = '';
    const n = M.rows, rowH = Math.max(4.5, Math.min(22, 640 / Math.max(1, n)));
    const every = Math.max(1, Math.ceil(11 / rowH));  // label every k-th token when rows are thin
    const W = 360, H = n * rowH + 10, xl = 110, xr = W - 110;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('width', W); svg.setAttribute('height', H);
    const lines = [];
    svg.setAttribute('aria-label', 'head view, ' + (where || '') + ': each query token linked to its ' + TOP_LINKS + ' strongest keys');
    for (let i = 0; i < n; i++) {
      // each query's TOP_LINKS strongest keys, opacity = the weight itself (0–1): near-uniform rows stay faint
      const row = Array.from(M.data.subarray(i * M.cols, (i + 1) * M.cols)).map((w, j) => [w, j]).filter((x) => x[0] > 0.01);
      row.sort((a, b) => b[0] - a[0]);
      for (const [w, j] of row.slice(0, TOP_LINKS)) {
      const ln = sv('line', { x1: xl + 4, y1: 8 + (i + 0.5) * rowH, x2: xr - 4, y2: 8 + (j + 0.5) * rowH,
        'stroke-opacity': (0.12 + 0.88 * Math.min(1, w)).toFixed(3), 'stroke-width': (1 + 2.5 * w).toFixed(2), 'data-from': i, 'data-to': j });
      ln.append(sv('title', null, M.rowLabels[i] + ' → ' + M.colLabels[j] + ' = ' + fmt(w)));
      lines.push(ln);
      svg.append(ln);
    } }
    const focus = (i) => { for (const ln of lines) ln.style.display = i === null || Number(ln.dataset.from) === i ? '' : 'none'; };
    for (let i = 0; i < n; i++) {
      // an invisible hover band per row, so thin rows can still be focused
      const band = sv('rect', { x: 0, y: 8 + i * rowH, width: xl, height: rowH, fill: 'transparent' });
      band.addEventListener('mouseenter', () => focus(i));
      band.addEventListener('mouseleave', () => focus(null));
      band.append(sv('title', null, i + ' ' + M.rowLabels[i]));
      svg.append(band);
      if (i % every) continue;
      const fs = rowH < 11 ? 10 : 12;
      svg.append(sv('text', { x: xl - 4, y: 8 + (i + 0.5) * rowH + fs / 3, 'text-anchor': 'end', 'font-size': fs, 'pointer-events': 'none' }, M.rowLabels[i]));
      svg.append(sv('text', { x: xr + 4, y: 8 + (i + 0.5) * rowH + fs / 3, 'text-anchor': 'start', 'font-size': fs }, M.colLabels[i] !== undefined ? M.colLabels[i] : ''));
    }
  }

  const HTML = `
    <section class="card" id="attention-view" data-tour="attention">
      <h2>Attention <span class="sub" id="attention-title">softmax(QKᵀ/√d + mask) per layer and head</span></h2>
      <div class="attn-controls">
        <label>Layer <select id="layer-select" data-testid="layer-select"></select></label>
        <label>Head <select id="head-select" data-testid="head-select"></select></label>
        <label>Show <select id="attn-kind" data-testid="attn-kind">
          <option value="attention">probabilities</option>
          <option value="attention_scores">scaled scores QKᵀ/√d</option>
          <option value="attention_masked">masked scores (+ mask)</option>
        </select></label>
        <label>Colours <select id="attn-scale" data-testid="attn-scale">
          <option value="fixed">probability, 0–1</option>
          <option value="uniform">relative to uniform (1/n)</option>
        </select></label>
        <label class="check"><input type="checkbox" id="attn-stretch" data-testid="attn-stretch"> stretch 0–1 to this head's max</label>
        <label class="check"><input type="checkbox" id="show-pad"> show [PAD]</label>
        <button type="button" class="save" data-save="attention-canvas">Save PNG</button>
        <button type="button" class="save" data-save="head-view">Save SVG</button>
      </div>
      <div class="thumbs" id="head-thumbs"></div>
      <div class="attn-body">
        <div>
          <div class="canvas-wrap" id="attention-wrap">
            <canvas id="attention-canvas" data-testid="attention-canvas" role="img"></canvas>
            <div class="hover" id="attention-hover" data-testid="attention-hover"></div>
          </div>
          <div class="colorbar" id="attention-colorbar" data-testid="attention-colorbar"></div>
        </div>
        <div class="headview-wrap">
          <div class="sub" id="head-view-note">head view: each query's strongest keys; line opacity = attention weight on the 0–1 scale (hover a token)</div>
          <svg id="head-view" data-testid="head-view" role="img"></svg>
        </div>
      </div>
      <details id="neuron-details" data-tour="neuron">
        <summary>Neuron view: how one score is made (q × k per dimension)</summary>
        <div class="attn-controls"><label>Query token <select id="neuron-query" data-testid="neuron-query"></select></label></div>
        <div class="canvas-wrap"><canvas id="neuron-canvas" data-testid="neuron-canvas" role="img"></canvas><div class="hover" id="neuron-hover"></div></div>
        <div class="colorbar" id="neuron-colorbar"></div>
      </details>
      <pre id="attention-values" data-testid="attention-values" hidden></pre>
    </section>
  `;

  function setup() {
    setupAttentionControls();
    $('attn-kind').value = S.kind; $('attn-stretch').checked = S.stretch; $('show-pad').checked = S.showPad;
    $('attn-scale').value = S.attnScale;
    $('attn-stretch').onchange = () => { S.stretch = $('attn-stretch').checked; renderAttention(); GB.saveState(); };
    $('neuron-details').addEventListener('toggle', renderNeuron);
    $('neuron-query').onchange = () => { S.neuronQuery = Number($('neuron-query').value); renderNeuron(); };
    attachHover($('attention-canvas'), $('attention-hover'), () => attnMapper, () => attnM);
    attachHover($('neuron-canvas'), $('neuron-hover'), () => neuronMapper, () => neuronM);
  }

  GB.attnScale = attnScale;
  GB.registerView({
    id: 'attention', html: HTML, on: ['snap', 'sample', 'whatif', 'pad', 'attn-scale', 'tour', 'head'], setup,
    render(why) {
      if (why === 'pad' || why === 'tour') $('show-pad').checked = S.showPad;
      if (why === 'attn-scale' || why === 'tour') {
        $('attn-scale').value = S.attnScale; $('attn-stretch').checked = S.stretch; $('attn-kind').value = S.kind;
      }
      renderAttention();
    },
  });
})();
