/* glassbert explorer, the app: the header, the sample and epoch controls, play, the address, and boot.
   Loaded after core.js, draw.js and every view: it defines the actions the views share (GB.openTensor,
   GB.selectSample, GB.saveState, GB.setShowPad), then loads the recording, sets every view up and draws them. */
'use strict';
(function () {
  const { $, S, el, cfg, snapLabel, tensorMeta, catalogue, catEntry, byRole, attnName, KIND_LABEL, rowsWindow,
    getTensor, snapX, niceTicks, wiActive, setStatus, views, update } = GB;

  // ------------------------------------------------------------------ header
  function renderHeader() {
    const m = S.man;
    $('run-name').textContent = (m.run_name || '') + (m.model ? '  ·  ' + m.model : '');
    const chips = $('config-chips');
    chips.innerHTML = '';
    const T = m.samples.length ? m.samples[0].input_ids.length : 0;
    const items = [
      cfg('num_hidden_layers') + ' layers', 'hidden ' + cfg('hidden_size'),
      cfg('num_attention_heads') + ' heads × ' + cfg('attention_head_size', Math.floor(cfg('hidden_size') / cfg('num_attention_heads'))),
      'FFN ' + cfg('intermediate_size'), 'vocab ' + cfg('vocab_size'), T + ' tokens',
      m.samples.length + ' samples', m.snapshots.length + ' snapshots'];
    for (const t of items) chips.append(el('span', { class: 'chip' }, t));
  }

  // ------------------------------------------------------------------ snapshot / sample / play
  /* The slider moves in epochs (in steps when several snapshots share an epoch): its ticks are round epochs,
     a drag lands on the nearest recorded snapshot, the arrow keys step from snapshot to snapshot. */
  function nearestSnap(x) {
    let best = 0;
    S.man.snapshots.forEach((s, i) => { if (Math.abs(s[S.xKey] - x) < Math.abs(snapX(best) - x)) best = i; });
    return best;
  }
  function renderTicks() {
    const n = S.man.snapshots.length, box = $('epoch-ticks'), slider = $('epoch-slider');
    const x0 = snapX(0), x1 = snapX(n - 1);
    slider.min = String(x0); slider.max = String(x1);
    const marks = $('epoch-marks');
    marks.innerHTML = '';
    S.man.snapshots.forEach((s) => marks.append(el('option', { value: s[S.xKey] })));
    box.innerHTML = '';
    const width = slider.clientWidth || 400;
    for (const v of niceTicks(x0, x1, Math.max(2, Math.floor(width / 70)))) {
      const t = el('span', null, String(v));
      t.style.left = (x1 > x0 ? 100 * (v - x0) / (x1 - x0) : 0) + '%';
      box.append(t);
    }
  }

  function selectSnap(i) {
    S.snap = Math.max(0, Math.min(S.man.snapshots.length - 1, i));
    const slider = $('epoch-slider');
    slider.value = String(snapX(S.snap));
    slider.setAttribute('aria-valuetext', snapLabel(S.snap) + ' (snapshot ' + (S.snap + 1) + ' of ' + S.man.snapshots.length + ')');
    $('epoch-label').textContent = snapLabel(S.snap);
    update('snap');
    saveState();
    if (S.whatif && S.whatif.snap !== S.snap) update('whatif-snap');  // the what-if view asks again at this epoch
    else prefetch(S.snap + 1);
  }

  // ------------------------------------------------------------------ the address holds the view
  /* #epoch=1400&sample=0&tensor=…&layer=1&head=3&kind=attention&b=0&stretch=1: a link opens this view. */
  function saveState() {
    if (!S.ready) return;
    const q = new URLSearchParams();
    q.set(S.xKey, String(snapX(S.snap)));
    q.set('sample', String(S.sample));
    if (S.tensor) q.set('tensor', S.tensor);
    q.set('layer', String(S.layer)); q.set('head', String(S.head));
    if (S.kind !== 'attention') q.set('kind', S.kind);
    if (S.stretch) q.set('stretch', '1');
    if (S.attnScale !== 'fixed') q.set('colours', S.attnScale);
    if (S.showPad) q.set('pad', '1'); else if (S.kind !== 'attention') q.set('pad', '0');
    if (S.diffB) q.set('b', String(snapX(S.diffB)));
    history.replaceState(null, '', '#' + q.toString());
  }
  function loadState() {
    const q = new URLSearchParams(location.hash.slice(1)), n = S.man.snapshots.length;
    const num = (k, max) => { const v = Number(q.get(k)); return q.has(k) && Number.isInteger(v) && v >= 0 && v < max ? v : null; };
    const sample = num('sample', S.man.samples.length);
    if (sample !== null) S.sample = sample;
    const layer = num('layer', cfg('num_hidden_layers', 1)), head = num('head', cfg('num_attention_heads', 1));
    if (layer !== null) S.layer = layer;
    if (head !== null) S.head = head;
    if (KIND_LABEL[q.get('kind')]) S.kind = q.get('kind');
    S.stretch = q.get('stretch') === '1'; S.showPad = q.get('pad') === '1' || (q.has('kind') && S.kind !== 'attention' && q.get('pad') !== '0');
    if (q.get('colours') === 'uniform') S.attnScale = 'uniform';
    if (q.get('tensor') && tensorMeta(q.get('tensor'))) S.tensor = q.get('tensor');
    if (q.has('b')) S.diffB = nearestSnap(Number(q.get('b')));
    return q.has(S.xKey) ? nearestSnap(Number(q.get(S.xKey))) : n - 1;
  }

  function prefetch(i) {
    if (i >= S.man.snapshots.length) return;
    const names = [S.tensor, attnName(), attnName('attention')].filter((n) => n && tensorMeta(n));
    for (const n of names) getTensor(i, n, S.sample, rowsWindow(tensorMeta(n), S.rowStart)).catch(() => {});
  }

  function selectSample(i) {
    S.sample = i;
    if (wiActive()) { S.wiShow = false; update('whatif-hide'); }
    $('sample-select').value = String(i);
    update('sample');
    saveState();
  }

  function openTensor(name, scroll) {
    S.tensor = name;
    S.slice = {};
    const e = catEntry(name);
    if (e && e.layer !== null && e.layer !== undefined) S.archLayer = e.layer;
    S.rowStart = 0;
    update('tensor', { scroll });
    saveState();
  }

  function setShowPad(on) {
    S.showPad = on;
    update('pad');
    saveState();
  }

  // ------------------------------------------------------------------ save a view
  /* A canvas as PNG, an SVG (head view, curves) as SVG with its page styles written into it. */
  function saveView(node) {
    const a = document.createElement('a');
    const base = 'glassbert-' + node.id.replace(/-(canvas|svg)$/, '') + '-' + S.xKey + snapX(S.snap) + '-sample' + S.sample;
    if (node.tagName.toLowerCase() === 'canvas') {
      a.href = node.toDataURL('image/png'); a.download = base + '.png';
    } else {
      const clone = node.cloneNode(true), src = node.querySelectorAll('*'), dst = clone.querySelectorAll('*');
      const props = ['fill', 'stroke', 'stroke-width', 'stroke-opacity', 'opacity', 'font-family', 'font-size', 'font-weight', 'display'];
      src.forEach((e, i) => { const cs = getComputedStyle(e); dst[i].setAttribute('style', props.map((k) => k + ':' + cs.getPropertyValue(k)).join(';')); });
      const text = new XMLSerializer().serializeToString(clone);
      a.href = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' })); a.download = base + '.svg';
      setTimeout(() => URL.revokeObjectURL(a.href), 5000);
    }
    document.body.append(a); a.click(); a.remove();
  }

  function togglePlay() {
    const btn = $('play-button');
    if (S.timer) { clearInterval(S.timer); S.timer = null; btn.textContent = '▶'; btn.classList.remove('on'); return; }
    if (S.snap >= S.man.snapshots.length - 1) selectSnap(0);
    btn.textContent = '❚❚'; btn.classList.add('on');
    S.timer = setInterval(() => {
      if (S.snap >= S.man.snapshots.length - 1) { togglePlay(); return; }
      selectSnap(S.snap + 1);
    }, 900);
  }

  // ------------------------------------------------------------------ boot
  async function load() {
    const tag = document.getElementById('glassbert-data');
    if (tag) {
      S.embedded = JSON.parse(tag.textContent);
      return [S.embedded.manifest, S.embedded.metrics || []];
    }
    const r = await fetch('api/manifest');
    if (!r.ok) throw new Error('could not load the manifest: ' + r.status + ' ' + ((await r.json().catch(() => ({}))).message || ''));
    const man = await r.json();
    const mr = await fetch('api/metrics');
    return [man, mr.ok ? await mr.json() : []];
  }

  async function boot() {
    try {
      [S.man, S.metrics] = await load();
    } catch (e) { setStatus(String(e.message || e)); return; }
    const man = S.man;
    document.title = 'glassbert explorer · ' + (man.run_name || '');
    if (!man.snapshots.length) { setStatus('this recording has no snapshots yet'); return; }
    renderHeader();
    const left = man.export_dropped || [];
    if (S.embedded && left.length) {  // an exported file says what its size bound left out
      const kinds = {};
      for (const n of left) { const k = (man.dropped_kinds || {})[n] || (/\.(weight|bias)$/.test(n) ? 'weights' : 'activations'); (kinds[k] = kinds[k] || []).push(n); }
      const said = Object.entries(kinds).map(([k, ns]) => ns.length + ' ' + k + ' (' + ns.slice(0, 3).map((n) => n.replace(man.prefix || '', '')).join(', ') + (ns.length > 3 ? ', …' : '') + ')');
      const note = el('div', { class: 'note', id: 'export-note', 'data-testid': 'export-note' },
        'This file leaves out ' + said.join(' and ') + ' to stay under its size bound; the served page (glassbert explore RUN) shows them.');
      $('status').after(note);
    }
    const ss = $('sample-select');
    man.samples.forEach((s, i) => ss.append(el('option', { value: i }, '#' + s.index + ' · ' + (s.text.length > 60 ? s.text.slice(0, 58) + '…' : s.text))));
    ss.onchange = () => selectSample(Number(ss.value));
    const epochs = man.snapshots.map((x) => x.epoch);
    S.xKey = epochs.every((e, i) => !i || e > epochs[i - 1]) ? 'epoch' : 'step';
    const slider = $('epoch-slider');
    slider.addEventListener('input', () => selectSnap(nearestSnap(Number(slider.value))));
    slider.addEventListener('keydown', (e) => {  // the arrows step through the snapshots, not single epochs
      const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 5, PageDown: -5 }[e.key];
      if (e.key === 'Home' || e.key === 'End') { e.preventDefault(); selectSnap(e.key === 'Home' ? 0 : man.snapshots.length - 1); }
      else if (step) { e.preventDefault(); selectSnap(S.snap + step); }
    });
    window.addEventListener('resize', renderTicks);
    $('play-button').onclick = togglePlay;
    document.querySelectorAll('button.save').forEach((b) => { b.onclick = () => saveView($(b.dataset.save)); });
    $('link-button').onclick = () => {
      saveState();
      if (navigator.clipboard) navigator.clipboard.writeText(location.href).catch(() => {});
      $('link-button').textContent = 'Link copied';
      setTimeout(() => { $('link-button').textContent = 'Link'; }, 1500);
    };
    // what a recording does not hold is not shown: one snapshot (no slider, no comparison), no heads, no metrics
    if (man.snapshots.length < 2) {
      $('play-button').hidden = true;
      $('slider-wrap').hidden = true;
    }
    S.tensor = [byRole('start')].concat(catalogue().filter((e) => e.block).map((e) => e.name))
      .find((n) => n && tensorMeta(n)) || Object.keys(man.tensors)[0];
    const first = loadState();
    $('sample-select').value = String(S.sample);
    const e = catEntry(S.tensor);
    if (e && e.layer !== null && e.layer !== undefined) S.archLayer = e.layer;
    for (const v of views) if (v.setup) v.setup();  // each view's controls, from the state the address gave
    update('boot');
    renderTicks();
    S.ready = true;
    selectSnap(first);
    buildJump();
    document.body.dataset.ready = '1';
  }

  /* "Go to": the views' titles, from the registry (the cards shown for this recording), in the order of the
     page; choosing one scrolls to its card below the sticky bar and puts the focus there. On a phone it floats
     at the bottom corner, so every view is one choice away wherever the reader is. */
  function buildJump() {
    const sel = $('jump-select');
    const fill = () => {
      sel.innerHTML = '';
      sel.append(el('option', { value: '' }, 'a view…'));
      for (const v of views) {
        const id = v.html && (v.html.match(/id="([^"]+)"/) || [])[1], card = id && $(id);
        if (!card || !card.offsetParent) continue;  // hidden for this recording
        const h = card.querySelector('h2, h3');
        const title = h ? [...h.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim() : '';
        sel.append(el('option', { value: id }, title || v.id));
      }
    };
    fill();
    sel.addEventListener('focus', fill);
    sel.onchange = () => {
      const card = $(sel.value);
      sel.value = '';
      if (!card) return;
      const nav = $('controls'), over = getComputedStyle(nav).position === 'sticky' ? nav.offsetHeight : 0;
      window.scrollTo({ top: card.getBoundingClientRect().top + window.scrollY - over - 6 });
      if (!card.hasAttribute('tabindex')) card.setAttribute('tabindex', '-1');
      card.focus({ preventScroll: true });
    };
  }

  Object.assign(GB, { openTensor, selectSample, saveState, setShowPad, selectSnap });
  boot();
})();
