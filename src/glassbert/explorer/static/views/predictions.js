/* glassbert explorer, view: the predictions of every recorded sample at this snapshot (MLM and pair head, or classifier) */
'use strict';
(function () {
  const { $, S, attnName, CONVENTION, el, pairNames, snapLabel, vocabToken, wiActive } = GB;

  /* The rows: the what-if input first when "show it in every view" is on (its answer at this snapshot, beside the
     recorded samples', not counted in their scores), then every recorded sample. */
  function rowsOf(snap) {
    const rows = S.man.samples.map((info, i) => ({ info, p: (snap.predictions || [])[i] || {}, i }));
    const w = S.whatif;
    if (wiActive() && w.snap === S.snap) rows.unshift({ info: w.man.samples[0], p: (w.man.snapshots[0].predictions || [])[0] || {}, i: null });
    return rows;
  }
  function rowOf(i) {
    if (i === null) {  // the what-if input: its row leads to the what-if panel
      const tr = el('tr', { class: 'cur whatif', 'data-sample': 'whatif', title: 'the what-if input (the panel above)' });
      tr.append(el('td', null, 'what-if'));
      return tr;
    }
    const tr = el('tr', { class: i === S.sample && !wiActive() ? 'cur' : '', 'data-sample': i });
    tr.onclick = () => GB.selectSample(i);
    tr.tabIndex = 0; tr.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); GB.selectSample(i); } };
    tr.append(el('td', null, String(S.man.samples[i].index)));
    return tr;
  }

  const isClassifier = () => S.man.snapshots.some((x) => (x.predictions || []).some((p) => p.label_probs));
  function labelName(i) { const n = (S.man.config || {}).id2label || {}; return n[i] !== undefined ? n[i] : 'label ' + i; }
  /* A fine-tuned classifier's recorded eval samples: the label it predicts at this snapshot, its probability,
     the gold label, right or wrong, and p(gold) at the first snapshot → now (how training moved it). */
  function renderClassifierPredictions(snap) {
    const tbl = $('prediction-table');
    const head = el('tr');
    for (const h of ['#', 'text', 'predicted', 'gold', '', 'p(gold): first → now']) head.append(el('th', null, h));
    tbl.append(head);
    let ok = 0, all = 0;
    for (const { info, p, i } of rowsOf(snap)) {
      const first = i === null ? {} : (S.man.snapshots[0].predictions || [])[i] || {};
      const tr = rowOf(i);
      const text = info.text.length > 80 ? info.text.slice(0, 78) + '…' : info.text;
      tr.append(el('td', null, text));
      if (!p.label_probs) { tr.append(el('td', null, '—')); tbl.append(tr); continue; }
      const gold = info.label, right = gold === undefined ? null : p.label_pred === gold;
      tr.append(el('td', { class: 'mono' }, labelName(p.label_pred) + ' ' + (100 * p.label_probs[p.label_pred]).toFixed(1) + '%'));
      tr.append(el('td', { class: 'mono' }, gold === undefined ? '—' : labelName(gold)));
      tr.append(el('td', { class: right === null ? '' : right ? 'ok' : 'no' }, right === null ? '' : right ? '✓' : '✗'));
      tr.append(el('td', { class: 'mono' }, gold === undefined || !first.label_probs ? '—'
        : (100 * first.label_probs[gold]).toFixed(1) + '% → ' + (100 * p.label_probs[gold]).toFixed(1) + '%'));
      if (right !== null && i !== null) { all++; if (right) ok++; }
      tbl.append(tr);
    }
    if (all) $('pred-sub').textContent += ' · right ' + ok + '/' + all;
    $('pred-note').textContent = 'How the attention changed: the attention view follows the slider; "compare" puts this layer\'s ' +
      'attention now (A) beside the first snapshot (B).';
    const btn = el('button', { type: 'button', id: 'pred-compare' }, 'compare the attention with the first snapshot ↓');
    btn.onclick = () => { GB.openTensor(attnName('attention'), false); S.diffB = 0; GB.redraw('diff'); $('diff-view').scrollIntoView({ block: 'start' }); };
    $('pred-note').append(' ', btn);
  }

  function renderPredictions() {
    const snap = S.man.snapshots[S.snap];
    $('pred-sub').textContent = snap ? snapLabel(S.snap) : '';
    if (snap && isClassifier()) { $('prediction-table').innerHTML = ''; renderClassifierPredictions(snap); return; }
    const tbl = $('prediction-table');
    tbl.innerHTML = '';
    const head = el('tr');
    for (const h of ['#', 'masked input', 'predicted', 'actual', '', pairNames()[0] + ' pred.', 'actual', '']) head.append(el('th', null, h));
    tbl.append(head);
    if (!snap) return;
    let okWords = 0, allWords = 0, okNsp = 0, allNsp = 0;
    for (const { info, p, i } of rowsOf(snap)) {
      const tr = rowOf(i), own = i !== null;  // the what-if row is not counted in the scores
      const real = info.tokens.slice(0, info.length).join(' ');
      tr.append(el('td', { class: 'mono' }, real.length > 80 ? real.slice(0, 78) + '…' : real));
      const pred = p.masked_pred_ids || [], truth = info.masked_ids || [];
      const td = el('td', { class: 'mono' });
      pred.forEach((id, k) => {
        const prob = p.masked_topk_probs && p.masked_topk_probs[k] ? p.masked_topk_probs[k][0] : null;
        td.append(document.createTextNode((k ? ', ' : '') + vocabToken(id) + ' '));
        td.append(el('span', { class: 'p' }, id + (prob !== null ? ' · ' + (100 * prob).toFixed(0) + '%' : '')));
      });
      if (!pred.length) td.textContent = '—';
      const tdA = el('td', { class: 'mono' }, truth.length ? truth.map((id) => vocabToken(id) + ' (' + id + ')').join(', ') : '—');
      const wordsOk = pred.length && truth.length ? pred.every((id, k) => id === truth[k]) : null;
      if (own && pred.length && truth.length) { allWords += truth.length; okWords += pred.filter((id, k) => id === truth[k]).length; }
      tr.append(td, tdA, el('td', { class: wordsOk === null ? '' : wordsOk ? 'ok' : 'no' }, wordsOk === null ? '' : wordsOk ? '✓' : '✗'));
      const np = p.is_next_pred, na = info.is_next;
      tr.append(el('td', null, np === undefined ? '—' : (np ? 'True' : 'False') + (p.is_next_prob !== undefined ? ' (' + (100 * p.is_next_prob).toFixed(0) + '% ' + pairNames()[0] + ')' : '')));
      tr.append(el('td', null, na === null || na === undefined ? '—' : na ? 'True' : 'False'));
      const nspOk = np === undefined || na === null || na === undefined ? null : np === na;
      if (own && nspOk !== null) { allNsp++; if (nspOk) okNsp++; }
      tr.append(el('td', { class: nspOk === null ? '' : nspOk ? 'ok' : 'no' }, nspOk === null ? '' : nspOk ? '✓' : '✗'));
      tbl.append(tr);
    }
    const parts = [];
    if (allWords) parts.push('masked words ' + okWords + '/' + allWords);
    if (allNsp) parts.push(pairNames()[0] + ' ' + okNsp + '/' + allNsp);
    if (parts.length) $('pred-sub').textContent += ' · ' + parts.join(' · ');
    $('pred-note').textContent = allNsp ? CONVENTION : '';
  }

  const HTML = `
    <section class="card" id="predictions-panel" data-tour="predictions">
      <h2>Predictions <span class="sub" id="pred-sub"></span></h2>
      <div class="table-scroll"><table class="pred-table" id="prediction-table" data-testid="prediction-table"></table></div>
      <p class="note" id="pred-note"></p>
    </section>
  `;

  function setup() {
    $('predictions-panel').hidden = !S.man.snapshots.some((x) => (x.predictions || []).some((p) => p.masked_pred_ids || p.is_next_pred !== undefined || p.label_probs));
  }

  GB.registerView({ id: 'predictions', html: HTML, row: 'two-col wide-left', on: ['snap', 'sample', 'whatif', 'whatif-hide'], setup, render: renderPredictions });
})();
