/* glassbert explorer, view: one tensor as a heatmap (sliced to 2-D, big tables a window of rows at a time) */
'use strict';
(function () {
  const { $, S, attachHover, colorbar, drawHeatmap, el, getTensor, isCurrent, labelsFor, matrixOf, nextGen,
    notRecordedWhy, rowsWindow, sampleInfo, sampleName, scaleFor, setStatus, sharedNote, snapLabel, statsText,
    tensorMeta, update } = GB;

  let matrixMapper = null, matrixM = null;

  function slicersFor(meta, div, onChange) {
    div.innerHTML = '';
    const info = sampleInfo();
    const lead = meta.shape.length - 2;
    for (let a = 0; a < lead; a++) {
      const sel = el('select', { 'data-axis': a, id: div.id + '-axis-' + a });
      const labels = labelsFor(meta.dims[a], meta.shape[a], info);
      const n = meta.dims[a] === 'token' && !S.showPad ? Math.min(meta.shape[a], info.length) : meta.shape[a];
      for (let i = 0; i < n; i++) sel.append(el('option', { value: i }, meta.dims[a] + ' ' + labels[i]));
      sel.value = String(Math.min(S.slice[a] || 0, n - 1));
      sel.onchange = () => { S.slice[a] = Number(sel.value); onChange(); };
      const lab = el('label', null, meta.dims[a]);
      lab.append(sel);
      div.append(lab);
    }
  }

  /* "Rows from": a row number, or a token (its id in the vocabulary) for tables with a vocab axis. */
  function rowFromQuery(meta, text) {
    text = text.trim();
    if (/^[0-9]+$/.test(text)) return Number(text);
    if (meta.dims[0] !== 'vocab' || !text) return null;
    const v = S.man.vocab, entries = Array.isArray(v) ? v.map((t, i) => [i, t]) : Object.keys(v).map((k) => [Number(k), v[k]]);
    const hit = entries.find((e) => e[1] === text) || entries.find((e) => e[1].toLowerCase() === text.toLowerCase());
    return hit ? hit[0] : null;
  }

  async function renderMatrix() {
    const g = nextGen('matrix');
    const name = S.tensor;
    const meta = name && tensorMeta(name);
    if (!meta) { $('matrix-title').textContent = name ? notRecordedWhy(name) : '—'; return; }
    $('matrix-title').textContent = meta.label + (meta.kind === 'weight' ? ' (weight' + sharedNote(name, ', ') + ')' : ' · ' + sampleName());
    $('matrix-name').textContent = name;
    $('matrix-shape').textContent = 'shape [' + meta.shape.join(', ') + ']';
    $('matrix-dims').textContent = '(' + meta.dims.join(', ') + ')';
    slicersFor(meta, $('matrix-slicers'), renderMatrix);
    const rows = rowsWindow(meta, S.rowStart);
    $('matrix-rows').hidden = !rows;
    try {
      const t = await getTensor(S.snap, name, S.sample, rows);
      if (!isCurrent('matrix', g)) return;
      const M = matrixOf(t, meta.dims, S.slice, sampleInfo(), S.showPad, rows ? rows[0] : 0);
      const sc = scaleFor(M.data, false);
      matrixM = M;
      matrixMapper = drawHeatmap($('matrix-canvas'), M, sc, { maxW: Math.max(280, $('matrix-view').clientWidth - 40), maxH: 720,
        alt: meta.label + ' ' + name + (meta.kind === 'weight' ? '' : ', sample ' + sampleInfo().index) + ', ' + snapLabel(S.snap) });
      colorbar($('matrix-colorbar'), sc);
      let st = statsText(M.data);
      if (rows) st += ' · showing rows ' + rows[0] + '–' + (rows[0] + M.rows - 1) + ' of ' + meta.shape[0];
      $('matrix-stats').textContent = st;
      $('matrix-canvas').dataset.name = name;
      $('matrix-canvas').dataset.snap = S.snap;
      setStatus('');
    } catch (e) {
      if (isCurrent('matrix', g)) $('matrix-stats').textContent = String(e.message || e);
    }
  }

  const HTML = `
    <section class="card" id="matrix-view" data-tour="matrix">
      <h2>Tensor <span class="sub" id="matrix-title">—</span></h2>
      <div class="find-row">
        <label>Any tensor <input type="search" id="tensor-find" data-testid="tensor-find" list="tensor-names"
          placeholder="name or label: bias, LayerNorm, query…" aria-label="open any recorded tensor by name"></label>
        <datalist id="tensor-names"></datalist>
      </div>
      <div class="matrix-meta">
        <span class="mono" id="matrix-name"></span>
        <span class="shape" id="matrix-shape" data-testid="matrix-shape"></span>
        <span class="mono muted" id="matrix-dims"></span>
      </div>
      <div class="slicers" id="matrix-slicers"></div>
      <div class="slicers" id="matrix-rows" hidden>
        <label>Rows from <input type="search" id="row-jump" data-testid="row-jump" size="14" placeholder="row or token" aria-label="first row shown: a number or a token"></label>
        <span class="sub" id="row-jump-note"></span>
      </div>
      <div class="stats mono" id="matrix-stats"></div>
      <div class="canvas-wrap" id="matrix-wrap">
        <canvas id="matrix-canvas" data-testid="matrix-canvas" role="img"></canvas>
        <div class="hover" id="matrix-hover"></div>
      </div>
      <div class="colorbar" id="matrix-colorbar"></div>
      <div class="actions">
        <label class="check"><input type="checkbox" id="matrix-pad"> show [PAD]</label>
        <button type="button" id="send-to-diff">Compare two epochs of this tensor ↓</button>
        <button type="button" class="save" data-save="matrix-canvas">Save PNG</button>
      </div>
    </section>
  `;

  function setup() {
    const man = S.man, names = $('tensor-names');
    for (const [n, m] of Object.entries(man.tensors)) names.append(el('option', { value: n }, m.label + ' · [' + m.shape.join(', ') + ']'));
    $('tensor-find').addEventListener('change', () => {
      const q = $('tensor-find').value.trim();
      const hit = tensorMeta(q) ? q : Object.keys(man.tensors).find((n) => n.includes(q) || man.tensors[n].label === q);
      if (hit) GB.openTensor(hit); else $('matrix-stats').textContent = 'no recorded tensor matches ' + JSON.stringify(q);
    });
    $('row-jump').addEventListener('change', () => {
      const meta = tensorMeta(S.tensor), r = meta ? rowFromQuery(meta, $('row-jump').value) : null;
      $('row-jump-note').textContent = r === null ? 'give a row number' + (meta && meta.dims[0] === 'vocab' ? ' or a token of the vocabulary' : '') : '';
      if (r !== null) { S.rowStart = r; update('rows'); }
    });
    $('send-to-diff').onclick = () => { $('diff-view').scrollIntoView({ behavior: 'smooth' }); };
    $('send-to-diff').hidden = man.snapshots.length < 2;  // one snapshot: nothing to compare
    $('matrix-pad').checked = S.showPad;
    $('matrix-pad').onchange = () => GB.setShowPad($('matrix-pad').checked);
    attachHover($('matrix-canvas'), $('matrix-hover'), () => matrixMapper, () => matrixM);
  }

  GB.registerView({
    id: 'matrix', html: HTML, row: 'two-col', on: ['snap', 'sample', 'whatif', 'tensor', 'pad', 'rows'], setup,
    render(why, opt) {
      if (why === 'pad') $('matrix-pad').checked = S.showPad;
      if (why === 'tensor') $('row-jump').value = '';
      renderMatrix();
      if (why !== 'tensor' || (opt || {}).scroll === false) return;
      // a tensor opened; one column (≤ 1000 px): the tensor is drawn below the diagram, bring it into view
      const r = $('matrix-view').getBoundingClientRect();
      if (r.top > window.innerHeight - 80 || r.bottom < 80) $('matrix-view').scrollIntoView({ block: 'start' });
    },
  });
})();
