/* glassbert explorer, view: attributions recorded with each snapshot (integrated gradients, layer conductance) */
'use strict';
(function () {
  const { $, S, attachHover, colorbar, colorFor, drawHeatmap, el, fmt, sampleInfo, scaleFor, snapLabel, snapShort,
    wiActive } = GB;

  /* Recorded with each snapshot (manifest: snapshots[k].attributions[sample] = one entry per target):
     integrated gradients per token and layer conductance per layer × token, by the model at that snapshot. */
  let attrLayersMapper = null, attrLayersM = null, attrEpochsMapper = null, attrEpochsM = null;
  function attrEntries(snap) {
    const s = S.man.snapshots[snap];
    return s && s.attributions ? (s.attributions[S.sample] || []) : [];
  }
  const hasAttributions = () => S.man.snapshots.some((s) => Array.isArray(s.attributions));
  /* Colour scales of attributions: symmetric, and never finer than ATTR_FLOOR (0.001 of probability), so that
     the noise of a target the baseline already gets stays white. */
  const ATTR_FLOOR = 0.001;
  function attrScale(data) {
    const sc = scaleFor(data, true);
    const m = Math.max(sc.vmax, ATTR_FLOOR);
    return Object.assign(sc, { vmin: -m, vmax: m, clipped: false });
  }
  /* Each layer's row divided by its own largest |value| (a pooler's last layer puts it all on [CLS], which
     would leave the other layers white on a shared scale); the hover still shows the real value. */
  function perLayer(M) {
    const colours = new Float32Array(M.data.length);
    for (let r = 0; r < M.rows; r++) {
      let m = ATTR_FLOOR;
      for (let c = 0; c < M.cols; c++) m = Math.max(m, Math.abs(M.data[r * M.cols + c]));
      for (let c = 0; c < M.cols; c++) colours[r * M.cols + c] = M.data[r * M.cols + c] / m;
    }
    return colours;
  }
  function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.005 ? 2 : 1) + '%'; }

  function renderAttribution() {
    const card = $('attribution-view');
    card.hidden = !hasAttributions() || wiActive();  // recorded with the recorded samples only
    if (card.hidden) return;
    const about = S.man.attribution || {};
    $('attr-about').textContent = about.f ? 'f = ' + about.f + ' · baseline: ' + about.baseline : '';
    $('attr-sub').textContent = snapLabel(S.snap);
    const entries = attrEntries(S.snap);
    const sel = $('attr-target');
    const names = entries.map((e) => e.target + (e.error ? '' : e.gold ? ' (true)' : ' (predicted)'));
    if (sel.dataset.names !== names.join('|')) {
      sel.innerHTML = '';
      names.forEach((n, i) => sel.append(el('option', { value: i }, n)));
      sel.dataset.names = names.join('|');
    }
    S.attrTarget = Math.min(S.attrTarget, Math.max(0, entries.length - 1));
    sel.value = String(S.attrTarget);
    const e = entries[S.attrTarget];
    const box = $('attr-tokens'), stats = $('attr-stats');
    box.innerHTML = ''; stats.innerHTML = '';
    const info = sampleInfo(), tokens = info.tokens.slice(0, info.length);
    if (!e || e.error) {
      stats.textContent = e ? e.error : 'no attributions were recorded for this snapshot';
      clearCanvas('attr-layers'); renderAttrEpochs(tokens);
      return;
    }
    const ig = Float32Array.from(e.ig), sc = attrScale(ig);
    tokens.forEach((t, i) => {
      const c = colorFor(ig[i], sc), lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
      const span = el('span', { class: 'tok attr' + (i === e.position ? ' target' : ''),
        title: 'position ' + i + ' · ' + t + ' · attribution ' + fmt(ig[i]), 'data-value': String(ig[i]) }, t);
      span.style.background = 'rgb(' + c.map(Math.round).join(',') + ')';
      span.style.color = lum > 150 ? '#1d2330' : '#ffffff';
      box.append(span);
    });
    let sum = 0;
    for (const v of ig) sum += v;
    const parts = ['p(' + e['class'] + ') ' + pct(e.probability) + ' · baseline ' + pct(e.baseline_probability) +
      ' · difference ' + fmt(e.probability - e.baseline_probability),
      'predicted ' + e.prediction + ' (' + pct(e.predicted_probability) + ')',
      'IG sum ' + fmt(sum) + ', delta ' + fmt(e.ig_delta) + ' after ' + e.ig_steps + ' steps'];
    if (e.layers) parts.push('conductance delta ' + fmt(e.layers_delta) + ' after ' + e.layers_steps + ' steps');
    stats.textContent = parts.join(' · ');
    if (e.ig_converged === false || e.layers_converged === false) {
      stats.append(el('span', { class: 'warn' }, ' · |delta| above the tolerance ' + fmt(e.tolerance) +
        ' (5% of the difference): read these as approximate'));
    }
    if (e.layers) {
      const L = e.layers.length, T = tokens.length, data = new Float32Array(L * T);
      for (let r = 0; r < L; r++) for (let c = 0; c < T; c++) data[r * T + c] = e.layers[L - 1 - r][c];  // last layer on top
      attrLayersM = { rows: L, cols: T, data, rowLabels: Array.from({ length: L }, (_, r) => 'layer ' + (L - r)),
        colLabels: tokens, rowName: 'layer', colName: 'token' };
      const own = $('attr-per-layer').checked;
      const shown = own ? Object.assign({}, attrLayersM, { data: perLayer(attrLayersM) }) : attrLayersM;
      const lsc = own ? { diverging: true, vmin: -1, vmax: 1 } : attrScale(data);
      attrLayersMapper = drawHeatmap($('attr-layers-canvas'), shown, lsc, { maxW: Math.max(320, card.clientWidth / 2 - 40),
        maxH: 420, noValues: own, minCell: 14 });
      colorbar($('attr-layers-colorbar'), lsc);
      if (own) $('attr-layers-colorbar').append(el('span', null, '× each layer\'s largest |value| (hover for the values)'));
      $('attr-layers-hover').textContent = '';
    } else {
      clearCanvas('attr-layers', e.layers_error || 'layer conductance was not recorded (explain=ig)');
    }
    renderAttrEpochs(tokens);
  }

  function clearCanvas(prefix, message) {
    const c = $(prefix + '-canvas');
    c.width = 0; c.height = 0; c.style.width = '0px'; c.style.height = '0px';
    $(prefix + '-colorbar').innerHTML = '';
    $(prefix + '-hover').textContent = message || '';
    if (prefix === 'attr-layers') { attrLayersMapper = null; } else { attrEpochsMapper = null; }
  }

  function renderAttrEpochs(tokens) {
    const snaps = S.man.snapshots, T = tokens.length, data = new Float32Array(snaps.length * T).fill(NaN);
    const rowLabels = [];
    snaps.forEach((_, k) => {
      const e = attrEntries(k)[S.attrTarget];
      const mark = k === S.snap ? '▶ ' : '';
      rowLabels.push(mark + snapShort(k) + (e && !e.error ? ' · ' + e['class'] : ''));
      if (e && e.ig) for (let c = 0; c < T; c++) data[k * T + c] = e.ig[c];
    });
    attrEpochsM = { rows: snaps.length, cols: T, data, rowLabels, colLabels: tokens, rowName: 'snapshot', colName: 'token' };
    const sc = attrScale(data);
    attrEpochsMapper = drawHeatmap($('attr-epochs-canvas'), attrEpochsM, sc,
      { maxW: Math.max(320, $('attribution-view').clientWidth / 2 - 40), maxH: 420, minCell: 14 });  // a label per token
    colorbar($('attr-epochs-colorbar'), sc);
  }

  const HTML = `
    <section class="card" id="attribution-view" data-testid="attribution-view" hidden>
      <h2>Attribution <span class="sub" id="attr-sub"></span></h2>
      <div class="attn-controls">
        <label>Target <select id="attr-target" data-testid="attr-target"></select></label>
        <label class="check"><input type="checkbox" id="attr-per-layer" checked> each layer on its own colour scale</label>
        <span class="sub" id="attr-about"></span>
      </div>
      <div class="kv"><span class="k">Integrated gradients</span><span class="v tokens" id="attr-tokens" data-testid="attr-tokens"></span></div>
      <div class="stats mono" id="attr-stats" data-testid="attr-stats"></div>
      <div class="attr-maps">
        <div class="attr-map">
          <div class="sub">layer conductance: how much of f(input) − f(baseline) flows through each layer's output at each token</div>
          <div class="canvas-wrap" id="attr-layers-wrap">
            <canvas id="attr-layers-canvas" data-testid="attr-layers-canvas" role="img"></canvas>
            <div class="hover" id="attr-layers-hover"></div>
          </div>
          <div class="colorbar" id="attr-layers-colorbar"></div>
        </div>
        <div class="attr-map">
          <div class="sub">integrated gradients at every snapshot (rows) — how training moved them</div>
          <div class="canvas-wrap" id="attr-epochs-wrap">
            <canvas id="attr-epochs-canvas" data-testid="attr-epochs-canvas" role="img"></canvas>
            <div class="hover" id="attr-epochs-hover"></div>
          </div>
          <div class="colorbar" id="attr-epochs-colorbar"></div>
        </div>
      </div>
    </section>
  `;

  function setup() {
    attachHover($('attr-layers-canvas'), $('attr-layers-hover'), () => attrLayersMapper, () => attrLayersM);
    attachHover($('attr-epochs-canvas'), $('attr-epochs-hover'), () => attrEpochsMapper, () => attrEpochsM);
    $('attr-target').onchange = () => { S.attrTarget = Number($('attr-target').value); renderAttribution(); };
    $('attr-per-layer').onchange = renderAttribution;
  }

  GB.registerView({ id: 'attribution', html: HTML, on: ['snap', 'sample', 'whatif'], setup, render: renderAttribution });
})();
