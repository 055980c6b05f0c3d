/* glassbert explorer, view: a fine-tuned classifier's classes at this snapshot (as LIT's metrics): the confusion
   matrix and per-class precision, recall and F1 of the recorded samples, and the misclassified ones, each openable */
'use strict';
(function () {
  const { $, S, el, isClassifier, labelName, snapLabel } = GB;

  /* Over the recorded samples (manifest.samples, their gold label) with the predictions recorded at snapshot ``k``:
     {n: classes, m: n × n counts (rows gold, columns predicted), wrong: sample indices, total}. */
  function confusion(k) {
    const preds = (S.man.snapshots[k] || {}).predictions || [];
    const n = Math.max(2, ...preds.map((p) => (p.label_probs || []).length));
    const m = Array.from({ length: n }, () => new Array(n).fill(0)), wrong = [];
    let total = 0;
    S.man.samples.forEach((info, i) => {
      const p = preds[i] || {};
      if (info.label === undefined || p.label_pred === undefined) return;
      m[info.label][p.label_pred]++; total++;
      if (p.label_pred !== info.label) wrong.push(i);
    });
    return { n, m, wrong, total };
  }
  /* Per class: precision, recall, F1 (null where undefined: nothing predicted, or no gold sample of it) and support. */
  function perClass(c) {
    return c.m.map((row, k) => {
      const tp = row[k], gold = row.reduce((a, b) => a + b, 0), pred = c.m.reduce((a, r) => a + r[k], 0);
      const p = pred ? tp / pred : null, r = gold ? tp / gold : null;
      const f1 = p === null || r === null ? null : p + r ? 2 * p * r / (p + r) : 0;
      return { p, r, f1, support: gold };
    });
  }
  const pc = (v) => v === null ? '—' : (100 * v).toFixed(0) + '%';

  function render() {
    const card = $('classes-view');
    card.hidden = !isClassifier();
    if (card.hidden) return;
    const c = confusion(S.snap), rows = perClass(c), snap = S.man.snapshots[S.snap];
    const right = c.total - c.wrong.length;
    $('cls-sub').textContent = snapLabel(S.snap) + ' · ' + right + '/' + c.total + ' right';
    const evalRow = (S.metrics || []).find((r) => r.split === 'eval' && r.step === snap.step && r.accuracy !== undefined);
    $('cls-note').textContent = 'Over the ' + c.total + ' recorded samples only (the run\'s --record samples), not the whole ' +
      'evaluation set' + (evalRow ? ': on the whole set at this step, accuracy ' + (100 * evalRow.accuracy).toFixed(1) + '%' +
      (evalRow.macro_f1 !== undefined ? ', macro-F1 ' + (100 * evalRow.macro_f1).toFixed(1) + '%' : '') : '') + '.';
    // the confusion matrix: rows the gold label, columns the predicted one
    const t = $('cls-confusion');
    t.innerHTML = '';
    const head = el('tr');
    head.append(el('th', null, 'gold ↓ · predicted →'));
    for (let k = 0; k < c.n; k++) head.append(el('th', { scope: 'col' }, labelName(k)));
    t.append(head);
    c.m.forEach((row, g) => {
      const tr = el('tr');
      tr.append(el('th', { scope: 'row' }, labelName(g)));
      row.forEach((v, p) => tr.append(el('td', { class: 'n ' + (g === p ? 'diag' : v ? 'off' : ''), 'data-gold': g, 'data-pred': p }, String(v))));
      t.append(tr);
    });
    // precision, recall, F1 per class
    const m = $('cls-metrics');
    m.innerHTML = '';
    const mh = el('tr');
    for (const h of ['class', 'precision', 'recall', 'F1', 'gold samples']) mh.append(el('th', { scope: 'col' }, h));
    m.append(mh);
    rows.forEach((r, k) => {
      const tr = el('tr', { 'data-class': k, 'data-p': String(r.p), 'data-r': String(r.r), 'data-f1': String(r.f1) });
      tr.append(el('th', { scope: 'row' }, labelName(k)), el('td', { class: 'n' }, pc(r.p)), el('td', { class: 'n' }, pc(r.r)),
        el('td', { class: 'n' }, pc(r.f1)), el('td', { class: 'n' }, String(r.support)));
      m.append(tr);
    });
    // the misclassified samples: a click (or Enter) opens one in every view, and in the what-if box
    const list = $('cls-wrong');
    list.innerHTML = '';
    $('cls-wrong-none').hidden = c.wrong.length > 0;
    for (const i of c.wrong) {
      const info = S.man.samples[i], p = snap.predictions[i];
      const text = info.text.length > 90 ? info.text.slice(0, 88) + '…' : info.text;
      const li = el('li', { tabindex: '0', role: 'button', 'data-sample': i, class: i === S.sample ? 'cur' : '',
        title: 'open this sample in every view' + (whatIfOn() ? ' and put its text in the what-if box' : '') });
      li.append(el('span', { class: 'mono' }, '#' + info.index + ' '), document.createTextNode(text + ' '),
        el('span', { class: 'sub' }, '· gold ' + labelName(info.label) + ', predicted ' + labelName(p.label_pred) + ' ' +
          (100 * p.label_probs[p.label_pred]).toFixed(1) + '%'));
      li.onclick = () => open(i);
      li.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(i); } };
      list.append(li);
    }
  }
  const whatIfOn = () => !!$('whatif-text') && !$('whatif-text').disabled;
  function open(i) {
    GB.selectSample(i);
    if (!whatIfOn()) return;
    $('whatif-text').value = S.man.samples[i].text;
    $('whatif-pair').value = '';
    $('whatif-status').textContent = 'sample #' + S.man.samples[i].index + ' is in the what-if box: edit it and Run to see what changes the prediction';
  }

  const HTML = `
    <section class="card" id="classes-view" data-testid="classes-view" hidden>
      <h2>Classes <span class="sub" id="cls-sub"></span></h2>
      <p class="note" id="cls-note"></p>
      <div class="cls-grid">
        <div><div class="sub">confusion matrix</div>
          <div class="table-scroll"><table class="pred-table confusion" id="cls-confusion" data-testid="cls-confusion"></table></div></div>
        <div><div class="sub">per class</div>
          <div class="table-scroll"><table class="pred-table confusion" id="cls-metrics" data-testid="cls-metrics"></table></div></div>
        <div class="cls-wrong-box"><div class="sub">misclassified at this snapshot (click or Enter: open it)</div>
          <ol id="cls-wrong" data-testid="cls-wrong"></ol><p class="sub" id="cls-wrong-none" hidden>none: every recorded sample is right</p></div>
      </div>
    </section>
  `;

  GB.registerView({ id: 'classes', html: HTML, on: ['boot', 'snap', 'sample'], render });
})();
