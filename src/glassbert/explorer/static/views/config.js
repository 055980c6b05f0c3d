/* glassbert explorer, view: the configuration table */
'use strict';
(function () {
  const { $, S, el } = GB;

  function setup() {
    const m = S.man;
    const tbl = $('config-table');
    tbl.innerHTML = '';
    const skip = new Set(['architectures', 'model_type', 'id2label', 'label2id']);
    for (const k of Object.keys(m.config || {})) {
      if (skip.has(k)) continue;
      const v = m.config[k];
      if (v !== null && typeof v === 'object') continue;
      const row = el('div');
      row.append(el('span', { class: 'ck' }, k), el('span', { class: 'cv' }, String(v)));
      tbl.append(row);
    }
    const extra = [['recorded samples', m.samples.length], ['snapshots', m.snapshots.length],
      ['storage dtype', m.dtype || ''], ['snapshot bytes', (m.snapshot_bytes || 0).toLocaleString()],
      ['size limit', (m.size_limit_bytes || 0).toLocaleString()], ['record spec', m.record_spec || '—']];
    for (const [k, v] of extra) {
      const row = el('div');
      row.append(el('span', { class: 'ck' }, k), el('span', { class: 'cv' }, String(v)));
      tbl.append(row);
    }
  }

  const HTML = `
    <details class="card" id="config-panel" data-tour="config">
      <summary><h2>Configuration</h2></summary>
      <div id="config-table" class="config-table"></div>
    </details>
  `;

  GB.registerView({ id: 'config', html: HTML, setup });
})();
