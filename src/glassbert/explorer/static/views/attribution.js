/* glassbert explorer, view: attributions recorded with each snapshot (integrated gradients, layer conductance), and
   the what-if input's (served: the same methods, computed by the server for that input; an exported file: occlusion,
   computed by the page, which has no gradients) */
'use strict';
(function () {
  const { $, S, attachHover, colorbar, colorFor, drawHeatmap, el, fmt, isCurrent, nextGen, sampleInfo, scaleFor, snapLabel,
    snapShort, wiActive } = GB;

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
  /* An entry's value per token: integrated gradients (recorded, or the server's for a what-if input) or occlusion
     (an exported page's what-if: no gradients in the page). Never one method's numbers under another's name. */
  const METHOD = {
    ig: { name: 'Integrated gradients', values: (e) => e.ig },
    occlusion: { name: 'Occlusion', values: (e) => e.occlusion },
  };
  const methodOf = (e) => (e && e.occlusion ? 'occlusion' : 'ig');

  function fillTargets(entries) {
    const sel = $('attr-target');
    const names = entries.map((e) => e.target + (e.error ? '' : e.gold ? ' (true)' : ' (predicted)'));
    if (sel.dataset.names !== names.join('|')) {
      sel.innerHTML = '';
      names.forEach((n, i) => sel.append(el('option', { value: i }, n)));
      sel.dataset.names = names.join('|');
    }
    S.attrTarget = Math.min(S.attrTarget, Math.max(0, entries.length - 1));
    sel.value = String(S.attrTarget);
    return entries[S.attrTarget];
  }

  /* The tokens coloured by one entry's values, the stats line and the layers × tokens map. */
  function drawEntry(e, tokens, method) {
    const card = $('attribution-view'), box = $('attr-tokens'), stats = $('attr-stats');
    box.innerHTML = ''; stats.innerHTML = '';
    box.dataset.method = method;
    $('attr-method').textContent = METHOD[method].name;
    if (!e || e.error) {
      stats.textContent = e ? e.error : 'no attributions were recorded for this snapshot';
      clearCanvas('attr-layers');
      return false;
    }
    const values = Float32Array.from(METHOD[method].values(e)), sc = attrScale(values);
    tokens.forEach((t, i) => {
      const c = colorFor(values[i], sc), lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
      const span = el('span', { class: 'tok attr' + (i === e.position ? ' target' : ''),
        title: 'position ' + i + ' · ' + t + ' · ' + method + ' ' + fmt(values[i]), 'data-value': String(values[i]) }, t);
      span.style.background = 'rgb(' + c.map(Math.round).join(',') + ')';
      span.style.color = lum > 150 ? '#1d2330' : '#ffffff';
      box.append(span);
    });
    let sum = 0;
    for (const v of values) sum += v;
    if (method === 'occlusion') {
      stats.textContent = ['p(' + e['class'] + ') ' + pct(e.probability), 'predicted ' + e.prediction + ' (' + pct(e.predicted_probability) + ')',
        'each value p(target) − p(target with that token masked): each of ' + e.occluded + ' tokens replaced by [MASK] in turn ' +
        '([CLS], [SEP] and [MASK] kept), one forward pass each, no gradients',
        'sum ' + fmt(sum) + ' (occlusion need not add up to anything)'].join(' · ');
      clearCanvas('attr-layers', 'layer conductance needs gradients, which this page does not compute: the served page ' +
        '(glassbert explore RUN) shows it, and integrated gradients, for this input');
      return true;
    }
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
    return true;
  }

  function renderAttribution(why) {
    const card = $('attribution-view');
    if (wiActive()) { renderWhatIfAttribution(why); return; }
    nextGen('attribution');  // a what-if's answer still on its way is not drawn
    card.classList.remove('whatif', 'refused');
    $('attr-every').hidden = true;
    card.hidden = !hasAttributions();  // the recorded samples' attributions, taken while the run trained
    if (card.hidden) return;
    const about = S.man.attribution || {};
    $('attr-about').textContent = about.f ? 'f = ' + about.f + ' · baseline: ' + about.baseline : '';
    $('attr-sub').textContent = snapLabel(S.snap);
    $('attr-epochs-sub').textContent = 'integrated gradients at every snapshot (rows) — how training moved them';
    const e = fillTargets(attrEntries(S.snap));
    const info = sampleInfo(), tokens = info.tokens.slice(0, info.length);
    $('attr-tokens').dataset.snap = String(S.snap);
    drawEntry(e, tokens, 'ig');
    renderAttrEpochs(tokens, (k) => attrEntries(k)[S.attrTarget], () => '');
  }

  /* The what-if input (served: integrated gradients and layer conductance computed by the library for this
     input with this snapshot's weights; an exported file: occlusion computed by the page). Where the what-if
     cannot run (its weights are not recorded) the view is greyed and says why. */
  async function renderWhatIfAttribution() {
    const g = nextGen('attribution'), card = $('attribution-view'), w = S.whatif, snap = S.snap;
    card.hidden = false;
    card.classList.add('whatif');
    $('attr-every').hidden = S.man.snapshots.length < 2;  // one snapshot: its row is all there is
    $('attr-sub').textContent = 'what-if input · ' + snapLabel(snap);
    $('attr-about').textContent = S.embedded
      ? 'f = the model\'s probability of the target · computed in this page by occlusion (the page has no gradients)'
      : 'f = ' + ((S.man.attribution || {}).f || 'the model\'s probability of the target') + ' · baseline: [PAD] for every token but [CLS], [SEP] and [MASK] · computed by the server for this input';
    const info = w.man.samples[0], tokens = info.tokens.slice(0, info.length);
    const refused = S.wiRefused && S.wiRefused.snap === snap ? S.wiRefused.message : null;
    card.classList.toggle('refused', !!refused);
    const pending = (text) => {
      $('attr-tokens').innerHTML = ''; $('attr-stats').textContent = text;
      clearCanvas('attr-layers');
      renderWhatIfEpochs(tokens);
    };
    if (refused) { pending('no what-if here, so no attribution: ' + refused); return; }
    if (w.snap !== snap) { pending('running the what-if at ' + snapLabel(snap) + '…'); return; }
    pending((S.embedded ? 'occluding each token of the what-if input at ' : 'explaining the what-if input at ') + snapLabel(snap) + '…');
    const res = await GB.whatIf.attribution(snap);
    if (!isCurrent('attribution', g) || !wiActive() || S.whatif !== w) return;
    if (res.message) { pending(res.message); return; }
    const e = fillTargets(res.attributions);
    const method = methodOf(e);
    $('attr-tokens').dataset.snap = String(snap);
    drawEntry(e, res.tokens || tokens, method);
    renderWhatIfEpochs(res.tokens || tokens);
  }

  /* The what-if input's attributions at each snapshot computed so far (the slider's, and "every snapshot"). */
  function renderWhatIfEpochs(tokens) {
    const method = S.embedded ? 'occlusion' : 'ig';
    $('attr-epochs-sub').textContent = (method === 'ig' ? 'integrated gradients' : 'occlusion') + ' of the what-if input at each snapshot ' +
      'computed so far (rows; grey: not yet) — "every snapshot" computes the rest';
    renderAttrEpochs(tokens, (k) => { const r = GB.whatIf.explained(k); return r && r.attributions ? r.attributions[S.attrTarget] : null; },
      (k, e) => (e ? '' : GB.whatIf.runnable(k) ? ' · not yet' : ' · refused'));  // refused: no weights there
  }

  /* "every snapshot": the what-if input explained at each snapshot where it runs and not yet explained, one after
     the other (the map fills row by row; another input stops it). */
  async function computeEverySnapshot() {
    const btn = $('attr-every'), w = S.whatif;
    if (!w) return;
    const todo = S.man.snapshots.map((_, k) => k).filter((k) => GB.whatIf.runnable(k) && !GB.whatIf.explained(k));
    btn.disabled = true;
    for (let i = 0; i < todo.length; i++) {
      if (!wiActive() || S.whatif.key !== w.key) break;  // another input: stop
      btn.textContent = 'computing ' + (i + 1) + ' of ' + todo.length + '…';
      await GB.whatIf.attribution(todo[i]);
      if (wiActive() && S.whatif.key === w.key) renderWhatIfEpochs(S.whatif.man.samples[0].tokens.slice(0, S.whatif.man.samples[0].length));
    }
    btn.disabled = false;
    btn.textContent = 'every snapshot';
  }

  function clearCanvas(prefix, message) {
    const c = $(prefix + '-canvas');
    c.width = 0; c.height = 0; c.style.width = '0px'; c.style.height = '0px';
    $(prefix + '-colorbar').innerHTML = '';
    $(prefix + '-hover').textContent = message || '';
    if (prefix === 'attr-layers') { attrLayersMapper = null; } else { attrEpochsMapper = null; }
  }

  /* Snapshots × tokens: ``entryAt(k)`` the entry of snapshot k (or null), ``note(k, entry)`` what its row label adds. */
  function renderAttrEpochs(tokens, entryAt, note) {
    const snaps = S.man.snapshots, T = tokens.length, data = new Float32Array(snaps.length * T).fill(NaN);
    const rowLabels = [];
    let filled = 0;
    snaps.forEach((_, k) => {
      const e = entryAt(k), ok = e && !e.error, values = ok ? METHOD[methodOf(e)].values(e) : null;
      if (values) filled++;
      const mark = k === S.snap ? '▶ ' : '';
      rowLabels.push(mark + snapShort(k) + (ok ? ' · ' + e['class'] : '') + note(k, ok ? e : null));
      if (values) for (let c = 0; c < T; c++) data[k * T + c] = values[c];
    });
    attrEpochsM = { rows: snaps.length, cols: T, data, rowLabels, colLabels: tokens, rowName: 'snapshot', colName: 'token' };
    const sc = attrScale(data);
    attrEpochsMapper = drawHeatmap($('attr-epochs-canvas'), attrEpochsM, sc,
      { maxW: Math.max(320, $('attribution-view').clientWidth / 2 - 40), maxH: 420, minCell: 14 });  // a label per token
    $('attr-epochs-canvas').dataset.filled = String(filled);  // the snapshots whose row holds values
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
      <div class="kv"><span class="k" id="attr-method">Integrated gradients</span><span class="v tokens" id="attr-tokens" data-testid="attr-tokens"></span></div>
      <div class="stats mono" id="attr-stats" data-testid="attr-stats"></div>
      <div class="attr-maps">
        <div class="attr-map">
          <div class="sub" id="attr-layers-sub">layer conductance: how much of f(input) − f(baseline) flows through each layer's output at each token</div>
          <div class="canvas-wrap" id="attr-layers-wrap">
            <canvas id="attr-layers-canvas" data-testid="attr-layers-canvas" role="img"></canvas>
            <div class="hover" id="attr-layers-hover"></div>
          </div>
          <div class="colorbar" id="attr-layers-colorbar"></div>
        </div>
        <div class="attr-map">
          <div class="sub"><span id="attr-epochs-sub">integrated gradients at every snapshot (rows) — how training moved them</span>
            <button type="button" id="attr-every" data-testid="attr-every" hidden>every snapshot</button></div>
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
    $('attr-every').onclick = computeEverySnapshot;
  }

  GB.registerView({ id: 'attribution', html: HTML, on: ['snap', 'sample', 'whatif', 'whatif-hide', 'whatif-refused'], setup,
    render: renderAttribution });
})();
