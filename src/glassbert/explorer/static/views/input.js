/* glassbert explorer, view: the input (masked tokens, token table, vocabulary) */
'use strict';
(function () {
  const { $, S, cfg, CONVENTION, el, pairNames, sampleInfo, vocabToken, wiActive } = GB;

  function renderInput() {
    const info = sampleInfo();
    $('input-sub').textContent = (wiActive() ? 'what-if input · ' : 'sample ' + info.index + ' · ') + info.length + ' real tokens of ' + info.input_ids.length;
    document.body.classList.toggle('whatif-on', wiActive());
    $('input-text').textContent = info.text;
    const mi = $('masked-input');
    mi.innerHTML = '';
    const maskedAt = new Map(info.masked_positions.map((p, i) => [p, i]));
    let pads = 0;
    info.tokens.forEach((t, i) => {
      if (!info.attention_mask[i]) { pads++; return; }
      const cls = 'tok' + (maskedAt.has(i) ? ' masked' : '') + (/^\[.*\]$/.test(t) ? ' special' : '');
      const span = el('span', { class: cls, title: 'position ' + i + ' · id ' + info.input_ids[i] + ' · segment ' + info.token_type_ids[i] }, t);
      if (maskedAt.has(i)) span.append(el('small', null, '(' + (info.masked_tokens[maskedAt.get(i)] || '?') + ')'));
      mi.append(span);
    });
    if (pads) mi.append(el('span', { class: 'tok pad' }, '[PAD] × ' + pads));
    const tbl = $('token-table');
    tbl.innerHTML = '';
    const rows = [['position', (i) => i], ['token', (i) => info.tokens[i]], ['input id', (i) => info.input_ids[i]],
      ['segment id', (i) => info.token_type_ids[i]], ['attention mask', (i) => info.attention_mask[i]]];
    for (const [name, f] of rows) {
      const tr = el('tr');
      tr.append(el('th', null, name));
      for (let i = 0; i < info.input_ids.length; i++) {
        const cls = maskedAt.has(i) ? 'masked' : (info.attention_mask[i] ? '' : 'pad');
        tr.append(el('td', { class: cls }, String(f(i))));
      }
      tbl.append(tr);
    }
    $('masked-positions').textContent = info.masked_positions.length ? info.masked_positions.join(', ') : '—';
    $('masked-ids').textContent = info.masked_ids.length
      ? info.masked_ids.map((id, i) => id + ' (' + (info.masked_tokens[i] || vocabToken(id)) + ')').join(', ') : '—';
    // a row only where the model has its head: no masked words for a classifier, no pair label without a pair head
    const masks = S.man.samples.some((s) => (s.masked_positions || []).length);
    const pairs = S.man.samples.some((s) => s.is_next !== null && s.is_next !== undefined);
    $('masked-positions-row').hidden = $('masked-ids-row').hidden = !masks;
    $('is-next-row').hidden = !pairs;
    $('is-next-key').textContent = pairNames()[0] + ' (actual)';
    $('input-summary').textContent = ['Token table', masks && 'masked positions and word ids', pairs && pairNames()[0],
      'vocabulary'].filter(Boolean).join(', ');
    $('is-next').textContent = info.is_next === null || info.is_next === undefined ? '—' : (info.is_next ? pairNames()[0] + ' (True)' : pairNames()[1] + ' (False)');
    // the article's IsNext convention concerns BERT's NSP head only; an ALBERT's pair head is SOP (InOrder / Swapped)
    const nsp = !S.man.pair_labels || S.man.pair_labels[0] === 'IsNext';
    $('convention-note').textContent = info.is_next === null || info.is_next === undefined || !nsp ? '' : CONVENTION;
  }

  function renderVocab() {
    const v = S.man.vocab;
    const entries = Array.isArray(v) ? v.map((t, i) => [i, t]) : Object.keys(v).map((k) => [Number(k), v[k]]).sort((a, b) => a[0] - b[0]);
    $('vocab-count').textContent = Array.isArray(v) ? entries.length + ' tokens' : entries.length + ' of ' + cfg('vocab_size') + ' tokens (those used here)';
    const grid = $('vocab-grid');
    const draw = () => {
      const q = $('vocab-filter').value.trim().toLowerCase();
      grid.innerHTML = '';
      let n = 0;
      for (const [i, t] of entries) {
        if (q && !t.toLowerCase().includes(q) && String(i) !== q) continue;
        if (++n > 3000) break;
        const s = el('span');
        s.append(el('b', null, String(i)), document.createTextNode(t));
        grid.append(s);
      }
    };
    $('vocab-filter').oninput = draw;
    draw();
  }

  // ------------------------------------------------------------------ architecture

  const HTML = `
    <section class="card compact" id="input-panel" data-tour="input">
      <h2>Input <span class="sub" id="input-sub"></span></h2>
      <div class="kv"><span class="k">Masked input</span><span class="v tokens" id="masked-input"></span></div>
      <div class="kv"><span class="k">Text</span><span class="v" id="input-text"></span></div>
      <details id="input-details">
        <summary id="input-summary">Token table, masked positions and word ids, IsNext, vocabulary</summary>
        <div class="table-scroll"><table class="grid-table" id="token-table"></table></div>
        <div class="kv" id="masked-positions-row"><span class="k">Masked positions</span><span class="v mono" id="masked-positions"></span></div>
        <div class="kv" id="masked-ids-row"><span class="k">Masked word ids</span><span class="v mono" id="masked-ids"></span></div>
        <div class="kv" id="is-next-row"><span class="k" id="is-next-key">IsNext (actual)</span><span class="v" id="is-next"></span></div>
        <p class="note" id="convention-note"></p>
        <div class="sub" id="vocab-count"></div>
        <input type="search" id="vocab-filter" placeholder="filter tokens…" aria-label="filter the vocabulary">
        <div class="vocab" id="vocab-grid"></div>
      </details>
    </section>
  `;

  GB.registerView({ id: 'input', html: HTML, on: ['boot', 'sample', 'whatif'], setup: renderVocab, render: renderInput });
})();
