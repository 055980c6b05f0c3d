/* glassbert explorer, view: the architecture diagram (every block opens its tensor) */
'use strict';
(function () {
  const { $, S, catalogue, cfg, el, notRecordedWhy, sharedNote, sv, tensorMeta } = GB;

  function archSpec() {
    const l = S.archLayer;
    const fill = (t) => t.replace('{layer}', String(l + 1)).replace('{layers}', String(cfg('num_hidden_layers', 1)))
      .replace('{heads}', String(cfg('num_attention_heads', 1)));
    const groups = new Map();
    catalogue().forEach((e, i) => {
      if (!e.block) return;
      const layered = e.layer !== null && e.layer !== undefined;
      if (layered && e.layer !== l) return;
      if (!groups.has(e.group)) {
        const w = layered && catalogue().find((x) => x.layer === l && x.group === e.group && x.weight);
        groups.set(e.group, { title: fill(e.group) + sharedNote(w && w.weight, ' · weights '), layer: layered, entries: [] });
      }
      groups.get(e.group).entries.push([e, i]);
    });
    return [...groups.values()].map((g) => {
      const rows = new Map();
      for (const [e, i] of g.entries) {
        if (!rows.has(e.row)) rows.set(e.row, new Map());
        const chains = rows.get(e.row);
        if (!chains.has(e.chain)) chains.set(e.chain, []);
        chains.get(e.chain).push([e, i]);
      }
      const sorted = (m) => [...m.entries()].sort((x, y) => x[0] - y[0]).map((kv) => kv[1]);
      return {
        title: g.title, layer: g.layer,
        rows: sorted(rows).map((chains) => sorted(chains).map((chain) => chain.sort((x, y) => x[1] - y[1])
          .flatMap(([e]) => (e.weight ? [{ name: e.weight, label: e.weight_block || 'W', kind: 'weight' }] : [])
            .concat([{ name: e.name, label: e.block, kind: 'act' }])))),
      };
    });
  }

  function renderArch() {
    const tabs = $('arch-layer-tabs');
    tabs.innerHTML = '';
    const L = cfg('num_hidden_layers', 1);
    for (let l = 0; l < L; l++) {
      const b = el('button', { type: 'button', class: l === S.archLayer ? 'on' : '', 'data-layer': l }, 'layer ' + (l + 1));
      b.onclick = () => { S.archLayer = l; renderArch(); };
      tabs.append(b);
    }
    const svg = $('arch-svg');
    svg.innerHTML = '';
    const stopName = S.tensor;
    const defs = sv('defs');
    const mk = sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '6', markerHeight: '6', orient: 'auto-start-reverse' });
    mk.append(sv('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#9aa3b8' }));
    defs.append(mk);
    svg.append(defs);
    const measure = sv('text', { x: -1000, y: -1000 });
    const measureGroup = sv('g', { class: 'group' });  // inside a group, so that a title's class styles it
    measureGroup.append(measure);
    svg.append(measureGroup);
    const textW = (t, cls) => {  // cls: the class the text is drawn with (a group title is bold)
      measure.setAttribute('class', cls || ''); measure.textContent = t;
      return measure.getComputedTextLength ? measure.getComputedTextLength() : t.length * 6;
    };
    const BH = 38, GAP = 20, CGAP = 34, RGAP = 14, PAD = 12;
    // the right edge a box may reach: a group's box (its padding, its border) and the svg then fit the panel's scroller
    const avail = Math.max(420, document.querySelector('#arch-panel .arch-scroll').clientWidth - PAD - 4);
    let y = 6, maxW = 0;
    const hasAny = (g) => g.rows.some((r) => r.some((c) => c.some((b) => tensorMeta(b.name))));
    const groups = archSpec().filter((g) => g.layer || hasAny(g));
    let prevBottom = null;
    for (const g of groups) {
      const gEl = sv('g', { class: 'group' });
      const bg = sv('rect', { class: 'bg', x: 2, y });
      gEl.append(bg);
      // a title wider than the panel (ALBERT's "… · weights shared by layers …") breaks at its last " · "
      const cut = g.title.lastIndexOf(' · ');
      const lines = textW(g.title, 'gt') + PAD > avail && cut > 0
        ? [g.title.slice(0, cut), g.title.slice(cut + 3)] : [g.title];
      lines.forEach((line, i) => gEl.append(sv('text', { class: 'gt', x: PAD, y: y + 16 + 16 * i }, line)));
      const gTop = y;
      y += 28 + 16 * (lines.length - 1);
      let gW = 0;
      for (const row of g.rows) {
        let x = PAD;
        for (const chain of row) {
          const items = chain.map((b) => {
            const meta = tensorMeta(b.name);
            const shp = meta ? '[' + meta.shape.join(', ') + ']' : (S.man.dropped || []).includes(b.name) ? 'dropped' : 'not recorded';
            return { b, meta, shp, w: Math.max(68, Math.ceil(Math.max(textW(b.label), shp.length * 5.8)) + 16) };
          });
          const chainW = items.reduce((a, it) => a + it.w + GAP, -GAP);
          if (x > PAD && x + chainW > avail) { x = PAD; y += BH + RGAP; }  // wrap the row
          let prevRight = null, prevCenter = 0;
          for (const { b, meta, shp, w } of items) {
            // a chain wider than the panel (the attention scores' q·kᵀ → … → ctx) goes on below: the arrow bends down
            const wrapped = prevRight !== null && x + w > avail;
            if (wrapped) {
              const top = y + BH;
              y += BH + RGAP; x = PAD;
              gEl.append(sv('path', { class: 'flow', d: `M${prevCenter},${top + 1} V${y - RGAP / 2} H${x + w / 2} V${y - 2}` }));
            }
            const cls = 'blk ' + (b.kind === 'weight' ? 'weight' : 'act') + (meta ? '' : ' missing') + (b.name === S.tensor ? ' sel' : '');
            // one Tab stop for the whole diagram (the open block; the arrows move between blocks, Enter opens)
            const bEl = sv('g', { class: cls, 'data-name': b.name, tabindex: meta && b.name === stopName ? '0' : '-1',
              role: 'button', 'aria-label': b.label + ' ' + shp });
            bEl.append(sv('rect', { x, y, width: w, height: BH, rx: 6 }));
            bEl.append(sv('text', { x: x + w / 2, y: y + 15, 'text-anchor': 'middle' }, b.label));
            bEl.append(sv('text', { class: 'shape', x: x + w / 2, y: y + 29, 'text-anchor': 'middle' }, shp));
            bEl.append(sv('title', null, b.name + (meta ? '\n' + meta.label : '\n' + notRecordedWhy(b.name))));
            if (meta) {
              bEl.addEventListener('click', () => GB.openTensor(b.name));
              bEl.addEventListener('keydown', (e) => {
                if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); GB.openTensor(b.name); return; }
                const d = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
                if (!d) return;
                e.preventDefault();
                const all = [...bEl.ownerSVGElement.querySelectorAll('g.blk:not(.missing)')], at = all.indexOf(bEl);
                const next = all[Math.max(0, Math.min(all.length - 1, at + d))];
                all.forEach((x) => x.setAttribute('tabindex', x === next ? '0' : '-1'));
                next.focus();
              });
            }
            if (prevRight !== null && !wrapped) gEl.append(sv('line', { class: 'flow', x1: prevRight + 1, y1: y + BH / 2, x2: x - 2, y2: y + BH / 2 }));
            gEl.append(bEl);
            prevRight = x + w; prevCenter = x + w / 2;
            gW = Math.max(gW, x + w + PAD);
            x += w + GAP;
          }
          x += CGAP - GAP;
        }
        y += BH + RGAP;
      }
      y += 2;
      gW = Math.max(gW, ...lines.map((line) => textW(line, 'gt') + 2 * PAD));  // a long title (e.g. ALBERT's shared layers) fits its box
      bg.setAttribute('width', gW);
      bg.setAttribute('height', y - gTop);
      maxW = Math.max(maxW, gW + 4);
      if (prevBottom !== null) svg.append(sv('line', { class: 'flow', x1: 30, y1: prevBottom, x2: 30, y2: gTop - 1 }));
      svg.append(gEl);
      prevBottom = y;
      y += 18;
    }
    measure.remove();
    if (!svg.querySelector('g.blk[tabindex="0"]')) { const first = svg.querySelector('g.blk:not(.missing)'); if (first) first.setAttribute('tabindex', '0'); }
    svg.setAttribute('viewBox', '0 0 ' + maxW + ' ' + y);
    svg.setAttribute('width', maxW);
    svg.setAttribute('height', y);
  }

  const HTML = `
    <section class="card" id="arch-panel" data-tour="arch">
      <h2>Architecture <span class="sub">click a block to open its tensor</span></h2>
      <div class="layer-tabs" id="arch-layer-tabs"></div>
      <div class="arch-scroll"><svg id="arch-svg" data-testid="arch-svg" role="img" aria-label="BERT architecture: every block opens its tensor"></svg></div>
      <div class="legend-row">
        <span class="lg act"></span> activation <span class="lg wt"></span> weight <span class="lg missing"></span> not recorded
      </div>
    </section>
  `;

  GB.registerView({ id: 'arch', html: HTML, row: 'two-col', on: ['boot', 'whatif', 'tensor'], render: renderArch });
})();
