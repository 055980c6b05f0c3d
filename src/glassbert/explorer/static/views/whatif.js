/* glassbert explorer, view: the live what-if (the model on a typed input, with the words clicked masked), and
   GB.whatIf: that input at other snapshots and explained, for the comparison and attribution views */
'use strict';
(function () {
  const { $, S, el, pairNames, snapLabel, update, vocabToken, wiActive } = GB;

  /* The server runs the model on the typed input, with the clicked words masked, at the slider's snapshot (the
     weights it recorded; the saved model at the last one), and records it with the recorder's own code: the
     answer's manifest holds the tokens and predictions, its tensors come from api/tensor?whatif=ID. */
  function whatIfNeedsServer() {
    if (S.embedded && GB.pageModel.ready()) return '';  // the exported file runs the model itself (pagemodel.js)
    if (S.embedded) return 'What-if needs the server: this exported file cannot run the model itself (' + GB.pageModel.reason() + '). ' +
      'Run `glassbert explore RUN` (or `glassbert explore MODEL --text …`) and open the page it prints.';
    const w = S.man.whatif;
    return w && !w.available ? 'What-if is off: ' + w.reason : '';
  }
  let wiGen = 0, wiTimer = null;
  /* One question: the server's answer (POST api/whatif), or this page's (an exported file): {ok, body}; ``aside``:
     asked for another view (the comparison), not the answer this box shows. */
  async function ask(input, snap, aside) {
    if (S.embedded) {  // no server: the page runs the model on the weights this file holds
      const body = await GB.pageModel.answer(input.text, input.pair, input.mask, snap, aside);
      return { ok: !body.message, body };
    }
    const r = await fetch('api/whatif', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: input.text, pair: input.pair, mask: input.mask, snap }) });
    const body = await r.json();
    if (!r.ok && !body.message) body.message = r.status + ' ' + r.statusText;
    return { ok: r.ok, body };
  }
  const inputKey = (input) => JSON.stringify([input.text, input.pair, input.mask]);
  const answerOf = (body, snap, input) => ({ id: body.id, man: body.manifest, snap, weights: body.weights,
    local: body.tensors || null, note: body.note || '', input, key: inputKey(input) });
  async function askWhatIf() {
    const text = $('whatif-text').value, pair = $('whatif-pair').value.trim();
    if (!text.trim()) { $('whatif-status').textContent = 'type a sentence first'; return; }
    const asked = text + '\u0000' + pair;
    if (S.wiAsked !== asked) S.wiMask = [];  // another text: its tokens (and positions) are new
    S.wiAsked = asked;
    const g = ++wiGen, snap = S.snap, input = { text, pair: pair || null, mask: S.wiMask.slice() };
    $('whatif-status').textContent = 'running the model at ' + snapLabel(snap) + '…';
    let r;
    try {
      r = await ask(input, snap);
    } catch (e) {
      if (g === wiGen) $('whatif-status').textContent = (S.embedded ? 'the page could not run the model: ' : 'the server did not answer: ') + (e.message || e);
      return;
    }
    if (g !== wiGen) return;  // a newer question is on its way: this answer is never shown
    const body = r.body;
    if (!r.ok) {
      $('whatif-status').textContent = body.message;
      S.wiRefused = { snap, message: body.message };
      // the views still show the what-if of another snapshot: greyed, never labelled with this epoch's weights
      if (S.whatif && S.whatif.snap !== snap) document.body.classList.add('wi-refused');
      update('whatif-refused');
      return;
    }
    document.body.classList.remove('wi-refused');
    S.wiRefused = null;
    S.whatif = answerOf(body, snap, input);
    remember(answersAt, S.whatif.key + '|' + snap, Promise.resolve({ answer: S.whatif }));
    S.wiShow = $('whatif-show').checked;
    renderWhatIf();
    if (S.wiShow) update('whatif');
  }

  /* The what-if input shown, at other snapshots and explained (the comparison view's A and B, the attribution
     view): answers kept per (input, snapshot), a question on its way shared, so no view asks twice. */
  const answersAt = new Map(), explainedAt = new Map(), explainedDone = new Map();
  function remember(map, key, value) {
    map.delete(key);
    map.set(key, value);
    if (map.size > 32) map.delete(map.keys().next().value);
    return value;
  }
  /* The what-if input at snapshot ``snap``: a promise of {answer} or {message} (refused there, and why). */
  function at(snap) {
    const w = S.whatif;
    if (!w) return Promise.resolve({ message: 'no what-if input yet' });
    if (w.snap === snap) return Promise.resolve({ answer: w });
    const key = w.key + '|' + snap;
    if (!answersAt.has(key)) {
      const p = ask(w.input, snap, true).then((r) => (r.ok ? { answer: answerOf(r.body, snap, w.input) } : { message: r.body.message }),
        (e) => { answersAt.delete(key); return { message: (S.embedded ? 'the page could not run the model: ' : 'the server did not answer: ') + (e.message || e) }; });
      remember(answersAt, key, p);
    }
    return answersAt.get(key);
  }
  /* An answer the server no longer holds (it keeps its latest few): ask again next time. */
  function forget(snap) { if (S.whatif) answersAt.delete(S.whatif.key + '|' + snap); }
  /* The what-if input's attributions at snapshot ``snap``: served, integrated gradients and layer conductance by
     the library (POST api/whatif/attribution); in an exported file, occlusion computed by this page
     (pagemodel.js). A promise of {method, tokens, attributions, …} or {message}. */
  function attribution(snap) {
    const w = S.whatif;
    if (!w) return Promise.resolve({ message: 'no what-if input yet' });
    const key = w.key + '|' + snap;
    if (!explainedAt.has(key)) {
      const stale = () => !S.whatif || S.whatif.key !== w.key;
      const p = (S.embedded ? GB.pageModel.occlusion(w.input, snap, stale)
        : fetch('api/whatif/attribution', { method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ text: w.input.text, pair: w.input.pair, mask: w.input.mask, snap }) })
          .then(async (r) => { const b = await r.json(); return r.ok ? Object.assign({ method: 'ig' }, b) : { message: b.message || r.status + ' ' + r.statusText }; })
      ).then((res) => {
        if (!res) { explainedAt.delete(key); return { message: 'a newer what-if input was asked' }; }
        remember(explainedDone, key, res);
        return res;
      }, (e) => { explainedAt.delete(key); return { message: (S.embedded ? 'the page could not run the model: ' : 'the server did not answer: ') + (e.message || e) }; });
      remember(explainedAt, key, p);
    }
    return explainedAt.get(key);
  }
  /* The attributions of the what-if input at ``snap`` if already computed (else undefined). */
  function explained(snap) { return S.whatif ? explainedDone.get(S.whatif.key + '|' + snap) : undefined; }
  /* Where the what-if can run: the snapshots the server or this file holds every weight of. */
  function runnable(snap) {
    if (S.embedded) return GB.pageModel.canRun(snap);
    const w = S.man.whatif;
    return !!w && w.available && (!w.snaps || w.snaps.includes(snap));
  }
  GB.whatIf = { at, forget, attribution, explained, runnable };

  function renderWhatIf() {
    const w = S.whatif;
    $('whatif-clear').hidden = !wiActive();
    $('whatif-tokens-row').hidden = !w;
    const tbl = $('whatif-table');
    tbl.innerHTML = '';
    if (!w) return;
    const info = w.man.samples[0], pred = (w.man.snapshots[0].predictions || [])[0] || {};
    $('whatif-status').textContent = 'answered by ' + w.weights + (w.note ? ' · ' + w.note : '') + (S.wiShow ? ' · every view shows this input' : '');
    const box = $('whatif-tokens');
    box.innerHTML = '';
    const maskedAt = new Map(info.masked_positions.map((p, i) => [p, i]));
    info.tokens.slice(0, info.length).forEach((t, i) => {
      const clicked = S.wiMask.includes(i), special = /^\[.*\]$/.test(t) && !clicked;
      const span = el('span', { class: 'tok' + (maskedAt.has(i) ? ' masked' : '') + (special ? ' special' : ''),
        'data-pos': i, title: special ? t : (clicked ? 'click to unmask' : 'click to mask this word') }, t);
      if (maskedAt.has(i) && info.masked_tokens[maskedAt.get(i)] !== '[MASK]') span.append(el('small', null, '(' + info.masked_tokens[maskedAt.get(i)] + ')'));
      if (!special) span.onclick = () => {
        S.wiMask = clicked ? S.wiMask.filter((p) => p !== i) : S.wiMask.concat([i]).sort((a, b) => a - b);
        askWhatIf();
      };
      if (!special) { span.tabIndex = 0; span.setAttribute('role', 'button'); span.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); span.onclick(); } }; }
      box.append(span);
    });
    const head = el('tr');
    for (const h of ['', 'prediction (top 5, probability)', 'actual']) head.append(el('th', null, h));
    tbl.append(head);
    (pred.masked_topk_ids || []).forEach((ids, k) => {
      const probs = pred.masked_topk_probs[k], truth = info.masked_ids[k];
      const tr = el('tr', { 'data-position': info.masked_positions[k], 'data-ids': JSON.stringify(ids), 'data-probs': JSON.stringify(probs) });
      tr.append(el('td', { class: 'mono' }, '[MASK] @' + info.masked_positions[k]));
      tr.append(el('td', { class: 'mono' }, ids.map((id, j) => vocabTokenIn(w.man, id) + ' ' + (100 * probs[j]).toFixed(1) + '%').join(' · ')));
      const known = truth !== undefined && info.masked_tokens[k] !== '[MASK]';
      tr.append(el('td', { class: known ? (ids[0] === truth ? 'ok' : 'no') : '' }, known ? info.masked_tokens[k] + (ids[0] === truth ? ' ✓' : ' ✗') : '—'));
      tbl.append(tr);
    });
    if (pred.is_next_prob !== undefined) {
      const names = w.man.pair_labels || pairNames();
      const tr = el('tr', { 'data-pair-prob': String(pred.is_next_prob) });
      tr.append(el('td', null, 'pair head'), el('td', { class: 'mono' }, (pred.is_next_pred ? names[0] : names[1]) + ' · p(' + names[0] + ') ' +
        (100 * pred.is_next_prob).toFixed(1) + '%'), el('td', null, info.token_type_ids.some((x) => x) ? '' : 'one sentence: type a second one for a pair'));
      tbl.append(tr);
    }
    if (pred.label_probs) {
      const names = (w.man.config || {}).id2label || {};
      const order = pred.label_probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
      const tr = el('tr', { 'data-label-probs': JSON.stringify(pred.label_probs) });
      tr.append(el('td', null, 'classifier'), el('td', { class: 'mono' }, order.map(([p, i]) => (names[i] || 'label ' + i) + ' ' + (100 * p).toFixed(1) + '%').join(' · ')), el('td'));
      tbl.append(tr);
    }
    if (tbl.rows.length === 1) {  // no head answered: a bare encoder, or no [MASK] for the MLM head
      const tr = el('tr');
      tr.append(el('td', { colspan: 3, class: 'muted' }, info.masked_positions.length
        ? 'this model has no head: see its attention and tensors in the views'
        : 'no prediction yet: click a word to mask it (a model with an MLM head fills it); the views show every tensor of this input'));
      tbl.append(tr);
    }
  }
  function vocabTokenIn(man, id) {
    const v = man.vocab;
    const t = Array.isArray(v) ? v[id] : v && v[String(id)];
    return t !== undefined ? t : vocabToken(id);
  }
  function setupWhatIf() {
    const off = whatIfNeedsServer();
    $('whatif-panel').classList.toggle('off', !!off);
    for (const id of ['whatif-text', 'whatif-pair', 'whatif-run']) $(id).disabled = !!off;
    if (off) { $('whatif-status').textContent = off; return; }
    const tips = S.embedded ? { max_tokens: Math.min(128, GB.cfg('max_position_embeddings', 128)), refused: GB.pageModel.where() } : S.man.whatif || {};
    const mlm = GB.catalogue().some((e) => /(^|\.)predictions\./.test(e.name)) || Object.keys(S.man.tensors).some((n) => /(^|\.)predictions\./.test(n));
    if (!mlm) $('whatif-sub').textContent = 'type a sentence (a second one makes a pair): every view shows the model on it, with the weights of the epoch on the slider (this model has no masked-word head: nothing to fill in)';
    if (tips.max_tokens) $('whatif-sub').textContent += ' · at most ' + tips.max_tokens + ' tokens (this model\'s limit)';
    if (tips.refused) $('whatif-sub').textContent += ' · ' + tips.refused;
    $('whatif-form').addEventListener('submit', (e) => { e.preventDefault(); askWhatIf(); });
    $('whatif-show').onchange = () => {
      S.wiShow = $('whatif-show').checked;
      renderWhatIf(); update('whatif');
    };
    $('whatif-clear').onclick = () => { $('whatif-show').checked = false; $('whatif-show').onchange(); };
  }

  const HTML = `
    <section class="card compact" id="whatif-panel" data-testid="whatif-panel">
      <h2>What if <span class="sub" id="whatif-sub">type a sentence (a second one makes a pair), click a word to mask it: the model answers with the weights of the epoch on the slider</span></h2>
      <form id="whatif-form" class="whatif-form" autocomplete="off">
        <input type="text" id="whatif-text" data-testid="whatif-text" maxlength="2000" placeholder="a sentence, e.g. the cat chased the mouse" aria-label="what-if sentence A">
        <input type="text" id="whatif-pair" data-testid="whatif-pair" maxlength="2000" placeholder="second sentence (optional)" aria-label="what-if sentence B">
        <button type="submit" id="whatif-run" data-testid="whatif-run">Run</button>
        <label class="check"><input type="checkbox" id="whatif-show" checked> show it in every view</label>
        <button type="button" id="whatif-clear" hidden>back to the recorded samples</button>
      </form>
      <div class="kv" id="whatif-tokens-row" hidden><span class="k">Tokens (click to mask)</span><span class="v tokens" id="whatif-tokens" data-testid="whatif-tokens"></span></div>
      <div class="stats" id="whatif-status" data-testid="whatif-status" role="status"></div>
      <div class="table-scroll"><table class="pred-table" id="whatif-table" data-testid="whatif-table"></table></div>
    </section>
  `;

  GB.registerView({
    id: 'whatif', html: HTML, on: ['whatif-snap', 'whatif-hide'], setup: setupWhatIf,
    render(why) {
      if (why === 'whatif-snap') {  // debounced: ten arrow presses ask once, at the snapshot they end on
        clearTimeout(wiTimer); wiTimer = setTimeout(askWhatIf, 250); return;
      }
      document.body.classList.remove('wi-refused');
      $('whatif-show').checked = false;  // 'whatif-hide': a recorded sample was chosen
      renderWhatIf();
    },
  });
})();
