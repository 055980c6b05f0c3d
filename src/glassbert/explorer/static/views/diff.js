/* glassbert explorer, view: two epochs of one tensor side by side, and their difference (of a recorded sample, or of
   the what-if input run at both) */
'use strict';
(function () {
  const { $, S, attachHover, colorbar, drawHeatmap, el, fmt, getTensor, isCurrent, matrixOf, nextGen, rowsWindow,
    sampleInfo, scaleFor, snapLabel, tensorMeta, wiActive } = GB;

  /* The article's figures 13 and 14 (embeddings at epoch 0 and 5000) in one view, for any tensor. A and B share
     one colour scale; "lock" keeps it fixed while A or B moves (so colours compare across epochs too). */
  let diffMapper = null, diffM = null, sbsA = null, sbsB = null, sbsMapA = null, sbsMapB = null, lockedScale = null;
  let wiTimer = null, retried = false;
  async function renderDiff() {
    const g = nextGen('diff');
    const name = S.tensor, meta = name && tensorMeta(name);
    const n = S.man.snapshots.length;
    if (S.diffFollow) S.diffA = S.snap;
    $('diff-a').max = n - 1; $('diff-b').max = n - 1;
    $('diff-a').value = S.diffA; $('diff-b').value = S.diffB;
    $('diff-a').setAttribute('aria-valuetext', snapLabel(S.diffA));
    $('diff-b').setAttribute('aria-valuetext', snapLabel(S.diffB));
    $('diff-a-label').textContent = snapLabel(S.diffA);
    $('diff-b-label').textContent = snapLabel(S.diffB);
    $('diff-view').classList.remove('refused');
    if (!meta) { $('diff-title').textContent = 'open a tensor first'; return; }
    clearTimeout(wiTimer);
    if (wiActive() && meta.kind === 'activation') { renderWhatIfDiff(g, name, meta); return; }
    const who = meta.kind === 'weight' ? '' : ' · sample ' + sampleInfo().index;
    $('diff-title').textContent = meta.label + ' · ' + name + who;
    $('sbs-a-cap').textContent = 'A: ' + snapLabel(S.diffA);
    $('sbs-b-cap').textContent = 'B: ' + snapLabel(S.diffB);
    const rows = rowsWindow(meta, S.rowStart);
    try {
      const [a, b] = await Promise.all([getTensor(S.diffA, name, S.sample, rows), getTensor(S.diffB, name, S.sample, rows)]);
      if (!isCurrent('diff', g)) return;
      drawPair(a, b, name, meta, rows);
    } catch (e) {
      if (isCurrent('diff', g)) $('diff-stats').textContent = String(e.message || e);
    }
  }

  /* The what-if input at snapshots A and B: the model runs on it with each snapshot's weights (the server, or this
     page in an exported file). A follows the slider: it is the what-if the other views show, once it is there;
     B (and A when moved on its own) is asked after the slider rests (a quarter second), each answer kept, so a
     run of key presses asks once. Where the what-if cannot run, the view is greyed and says why. */
  function renderWhatIfDiff(g, name, meta) {
    $('diff-title').textContent = meta.label + ' · ' + name + ' · what-if input';
    $('sbs-a-cap').textContent = 'A: what-if input at ' + snapLabel(S.diffA);
    $('sbs-b-cap').textContent = 'B: what-if input at ' + snapLabel(S.diffB);
    const refusedHere = (snap) => (S.wiRefused && S.wiRefused.snap === snap ? S.wiRefused.message : null);
    const a = S.diffA, b = S.diffB;
    // A is the slider's: wait for the what-if panel's answer there (never a second question for the same snapshot)
    const waitA = S.diffFollow && S.whatif.snap !== a && !refusedHere(a);
    if (waitA) { $('diff-stats').textContent = 'running the what-if at ' + snapLabel(a) + '…'; return; }
    const known = (snap) => S.whatif.snap === snap;
    const go = async () => {
      const [ra, rb] = await Promise.all([a, b].map((snap) => (refusedHere(snap) && !known(snap)
        ? { message: refusedHere(snap) } : GB.whatIf.at(snap))));
      if (!isCurrent('diff', g)) return;
      const why = [['A', a, ra], ['B', b, rb]].filter((x) => x[2].message).map(([k, snap, r]) => k + ' (' + snapLabel(snap) + '): ' + r.message);
      if (why.length) {
        $('diff-view').classList.add('refused');
        $('diff-stats').textContent = 'no comparison of the what-if input: ' + why.join(' · ');
        for (const id of ['sbs-a', 'sbs-b', 'diff']) {  // nothing of another snapshot stays under these captions
          const c = $(id + '-canvas');
          c.width = 0; c.height = 0; c.style.width = '0px'; c.style.height = '0px';
        }
        $('sbs-colorbar').innerHTML = ''; $('diff-colorbar').innerHTML = '';
        $('diff-canvas').dataset.a = ''; $('diff-canvas').dataset.b = '';
        return;
      }
      const rows = rowsWindow(meta, S.rowStart);
      try {
        const [ta, tb] = await Promise.all([getTensor(a, name, 0, rows, ra.answer), getTensor(b, name, 0, rows, rb.answer)]);
        if (!isCurrent('diff', g)) return;
        retried = false;
        drawPair(ta, tb, name, meta, rows, ra.answer, rb.answer);
      } catch (e) {
        if (!isCurrent('diff', g)) return;
        if (/is gone/.test(String(e.message)) && !retried) {  // the server keeps its latest answers only: ask again
          retried = true;
          GB.whatIf.forget(a); GB.whatIf.forget(b);
          renderDiff();
          return;
        }
        $('diff-stats').textContent = String(e.message || e);
      }
    };
    const cached = [a, b].every((snap) => known(snap));
    $('diff-stats').textContent = 'running the what-if at ' + snapLabel(known(a) ? b : a) + '…';
    if (cached) go(); else wiTimer = setTimeout(go, 250);
  }

  /* A | B | A − B on one colour scale (locked: kept while A or B moves). */
  function drawPair(a, b, name, meta, rows, wiA, wiB) {
    const off = rows ? rows[0] : 0;
    const infoA = wiA ? wiA.man.samples[0] : sampleInfo(), infoB = wiB ? wiB.man.samples[0] : sampleInfo();
    const Ma = matrixOf(a, meta.dims, S.slice, infoA, S.showPad, off), Mb = matrixOf(b, meta.dims, S.slice, infoB, S.showPad, off);
    const d = new Float32Array(Ma.data.length);
    let na = 0, nb = 0, mx = 0, sum = 0, cnt = 0;
    for (let i = 0; i < d.length; i++) {
      const va = Ma.data[i], vb = Mb.data[i];
      if (!(va > -1e30) || !(vb > -1e30)) { d[i] = NaN; continue; }
      d[i] = va - vb;
      na += (va - vb) * (va - vb); nb += vb * vb; mx = Math.max(mx, Math.abs(va - vb)); sum += Math.abs(va - vb); cnt++;
    }
    const both = new Float32Array(Ma.data.length + Mb.data.length);
    both.set(Ma.data); both.set(Mb.data, Ma.data.length);
    let shared = scaleFor(both, false);
    if (S.diffLock && lockedScale && lockedScale.name === name) shared = lockedScale.sc;
    lockedScale = { name, sc: shared };
    const w = Math.max(200, ($('diff-view').clientWidth - 80) / 3);
    sbsA = Ma; sbsB = Mb;
    const who = wiA ? 'the what-if input, ' : '';
    sbsMapA = drawHeatmap($('sbs-a-canvas'), Ma, shared, { maxW: w, maxH: 520, alt: 'A, ' + who + meta.label + ' at ' + snapLabel(S.diffA) });
    sbsMapB = drawHeatmap($('sbs-b-canvas'), Mb, shared, { maxW: w, maxH: 520, alt: 'B, ' + who + meta.label + ' at ' + snapLabel(S.diffB) });
    const M = Object.assign({}, Ma, { data: d });
    diffM = M;
    const sc = scaleFor(d, true);
    diffMapper = drawHeatmap($('diff-canvas'), M, sc, { maxW: w, maxH: 520, alt: 'A − B, ' + who + meta.label });
    colorbar($('sbs-colorbar'), shared);
    $('sbs-colorbar').prepend(el('span', null, 'A and B' + (S.diffLock ? ' (locked)' : '') + ':'));
    colorbar($('diff-colorbar'), sc);
    $('diff-colorbar').prepend(el('span', null, 'A − B:'));
    $('diff-stats').textContent = 'max |A−B| ' + fmt(mx) + ' · mean |A−B| ' + fmt(cnt ? sum / cnt : 0) +
      ' · ‖A−B‖/‖B‖ ' + (nb ? fmt(Math.sqrt(na / nb)) : '—') +
      (wiA ? ' · A: ' + wiA.weights + ' · B: ' + wiB.weights : '');
    const c = $('diff-canvas');
    c.dataset.a = S.diffA; c.dataset.b = S.diffB; c.dataset.name = name; c.dataset.whatif = wiA ? wiA.id + ',' + wiB.id : '';
    c.dataset.max = String(mx);
  }

  const HTML = `
    <section class="card" id="diff-view" data-testid="diff-view" data-tour="compare">
      <h2>Two epochs side by side <span class="sub" id="diff-title"></span></h2>
      <div class="diff-controls">
        <label>A <input type="range" id="diff-a" data-testid="diff-a" min="0" max="0" value="0" aria-label="snapshot A"> <span id="diff-a-label" class="mono"></span></label>
        <label>B <input type="range" id="diff-b" data-testid="diff-b" min="0" max="0" value="0" aria-label="snapshot B"> <span id="diff-b-label" class="mono"></span></label>
        <label class="check"><input type="checkbox" id="diff-follow" checked> A follows the epoch slider</label>
        <label class="check"><input type="checkbox" id="diff-lock" data-testid="diff-lock"> lock the colour scale</label>
      </div>
      <div class="stats mono" id="diff-stats" data-testid="diff-stats"></div>
      <div class="sbs">
        <figure><figcaption id="sbs-a-cap">A</figcaption><div class="canvas-wrap"><canvas id="sbs-a-canvas" data-testid="sbs-a" role="img"></canvas><div class="hover" id="sbs-a-hover"></div></div></figure>
        <figure><figcaption id="sbs-b-cap">B</figcaption><div class="canvas-wrap"><canvas id="sbs-b-canvas" data-testid="sbs-b" role="img"></canvas><div class="hover" id="sbs-b-hover"></div></div></figure>
        <figure><figcaption>A − B</figcaption><div class="canvas-wrap" id="diff-wrap"><canvas id="diff-canvas" data-testid="diff-canvas" role="img"></canvas><div class="hover" id="diff-hover"></div></div></figure>
      </div>
      <div class="colorbar" id="sbs-colorbar" data-testid="sbs-colorbar"></div>
      <div class="colorbar" id="diff-colorbar"></div>
    </section>
  `;

  function setup() {
    $('diff-view').hidden = S.man.snapshots.length < 2;  // one snapshot: nothing to compare
    $('diff-a').addEventListener('input', () => { S.diffFollow = false; $('diff-follow').checked = false; S.diffA = Number($('diff-a').value); renderDiff(); });
    $('diff-b').addEventListener('input', () => { S.diffB = Number($('diff-b').value); renderDiff(); GB.saveState(); });
    $('diff-follow').onchange = () => { S.diffFollow = $('diff-follow').checked; renderDiff(); };
    $('diff-lock').onchange = () => { S.diffLock = $('diff-lock').checked; renderDiff(); };
    attachHover($('diff-canvas'), $('diff-hover'), () => diffMapper, () => diffM);
    attachHover($('sbs-a-canvas'), $('sbs-a-hover'), () => sbsMapA, () => sbsA);
    attachHover($('sbs-b-canvas'), $('sbs-b-hover'), () => sbsMapB, () => sbsB);
  }

  GB.registerView({ id: 'diff', html: HTML, on: ['snap', 'sample', 'whatif', 'whatif-hide', 'whatif-refused', 'tensor', 'pad', 'rows'], setup,
    render: renderDiff });
})();
