/* glassbert explorer: colour scales and heatmaps (a tensor slice drawn on a canvas, its labels, its hover). */
'use strict';
(function () {
  const { el, fmt, short, vocabToken, showTip, hideTip, prod } = GB;

  // ------------------------------------------------------------------ colour
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
    [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  function lerpStops(stops, t) {
    t = Math.max(0, Math.min(1, t));
    const x = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    const a = stops[i], b = stops[i + 1];
    return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
  }
  const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]];
  /* −∞ (a masked score) and NaN: a mid grey no scale uses (far from viridis' dark end and the diverging white). */
  const MASKED_RGB = [128, 128, 128];
  function colorFor(v, sc) {
    if (!(v > -1e30) || !Number.isFinite(v)) return MASKED_RGB;
    if (sc.uniform) return lerpStops(DIVERGING, 0.5 + 0.5 * (v > 0 ? Math.log2(v * sc.uniform) : -sc.span) / sc.span);
    if (sc.diverging) return lerpStops(DIVERGING, 0.5 + 0.5 * (sc.vmax ? v / sc.vmax : 0));
    return lerpStops(VIRIDIS, sc.vmax > sc.vmin ? (v - sc.vmin) / (sc.vmax - sc.vmin) : 0);
  }
  function scaleFor(data, forceDiverging) {
    let mn = Infinity, mx = -Infinity;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v > -1e30 && v < 1e30) { if (v < mn) mn = v; if (v > mx) mx = v; }
    }
    if (mn === Infinity) { mn = 0; mx = 0; }
    // big tensors (LayerNorm outputs of real checkpoints) have a few huge dims: clip the colour
    // scale at the 99.5th percentile of |x| so that the rest is not washed out
    let clip = null;
    if (data.length > 2000) {
      const step = Math.max(1, Math.floor(data.length / 20000)), a = [];
      for (let i = 0; i < data.length; i += step) { const v = data[i]; if (v > -1e30 && v < 1e30) a.push(Math.abs(v)); }
      a.sort((x, y) => x - y);
      const q = a[Math.min(a.length - 1, Math.floor(0.995 * a.length))];
      if (q > 0 && q < 0.5 * Math.max(Math.abs(mn), Math.abs(mx))) clip = q;
    }
    if (forceDiverging || mn < 0) {
      const m = clip || Math.max(Math.abs(mn), Math.abs(mx)) || 1;
      return { diverging: true, vmin: -m, vmax: m, lo: mn, hi: mx, clipped: !!clip };
    }
    return { diverging: false, vmin: 0, vmax: clip || mx || 1, lo: mn, hi: mx, clipped: !!clip };
  }
  function colorbar(div, sc) {
    div.innerHTML = '';
    const stops = sc.diverging ? DIVERGING : VIRIDIS;
    const grad = stops.map((c, i) => 'rgb(' + c.map(Math.round).join(',') + ') ' + (100 * i / (stops.length - 1)).toFixed(0) + '%');
    const bar = el('span', { class: 'bar' });
    bar.style.background = 'linear-gradient(90deg,' + grad.join(',') + ')';
    if (sc.uniform) {  // attention relative to uniform: white = 1/n, red = 2^span times more, blue = 2^span times less
      const k = Math.pow(2, sc.span);
      div.append(el('span', null, '≤ 1/' + k + ' of uniform'), bar, el('span', null, '≥ ' + k + '× uniform'),
        el('span', null, '(white = uniform 1/' + sc.uniform + ' = ' + fmt(1 / sc.uniform) + ')'));
      return;
    }
    div.append(el('span', null, fmt(sc.vmin)), bar, el('span', null, fmt(sc.vmax)));
    if (sc.diverging) div.append(el('span', null, '(0 = white)'));
    if (sc.clipped) div.append(el('span', null, '· colours clipped at the 99.5th percentile of |x| (range ' + fmt(sc.lo) + ' … ' + fmt(sc.hi) + ')'));
  }

  // ------------------------------------------------------------------ heatmap
  function labelsFor(dim, n, info) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      let s;
      if (dim === 'token') s = info.tokens[i] !== undefined ? info.tokens[i] : String(i);
      else if (dim === 'masked') {
        const k = info.masked_positions.length;
        s = i < k ? '@' + info.masked_positions[i] + ' ' + (info.masked_tokens[i] || '[MASK]') : '(none)';
      } else if (dim === 'vocab') s = vocabToken(i);
      else if (dim === 'head') s = 'h' + i;
      else if (dim === 'nsp') s = ['IsNext', 'NotNext'][i] || String(i);
      else if (dim === 'sop') s = ['InOrder', 'Swapped'][i] || String(i);  // ALBERT's sentence-order head
      else if (dim === 'segment') s = ['A', 'B'][i] || String(i);
      else s = String(i);
      out[i] = s;
    }
    return out;
  }

  /* M = {rows, cols, data, rowLabels, colLabels, rowName, colName}; returns a hover mapper. */
  function drawHeatmap(canvas, M, sc, opts) {
    opts = opts || {};
    const maxW = opts.maxW || 640, maxH = opts.maxH || 640;
    const ctx0 = canvas.getContext('2d');
    ctx0.font = '11px ' + getComputedStyle(document.body).fontFamily;
    const labelW = (labels, cap) => {
      if (!labels) return 0;
      let w = 0;
      const step = Math.max(1, Math.ceil(labels.length / 200));
      for (let i = 0; i < labels.length; i += step) w = Math.max(w, ctx0.measureText(labels[i]).width);
      return Math.min(cap, Math.ceil(w) + 8);
    };
    const titles = !opts.noLabels && (opts.rowTitle || opts.colTitle);
    const left = opts.noLabels ? 0 : labelW(M.rowLabels, 120) + (titles ? 14 : 0);
    const colW = opts.noLabels ? 0 : labelW(M.colLabels, 120);
    const top = opts.noLabels ? 0 : Math.ceil(colW * 0.87) + 8 + (titles ? 14 : 0);  // labels at 60°: sin 60° of their width
    const right = opts.noLabels ? 0 : Math.ceil(colW * 0.5);                          // … and cos 60° past the last column
    const maxCell = opts.maxCell || 42;
    let cw = Math.min((maxW - left) / M.cols, maxCell), ch = Math.min((maxH - top) / M.rows, maxCell);
    if (M.rows * M.cols <= 4096 || opts.square) { cw = ch = Math.min(cw, ch); }  // small: square cells
    else { ch = Math.max(Math.min(ch, Math.max(cw, 4)), Math.min(4, ch)); }       // big: rows stay readable
    if (!opts.noLabels && M.rows <= 64) ch = Math.max(ch, 12);                     // short and wide: every row labelled
    if (opts.minCell) { cw = Math.max(cw, opts.minCell); ch = Math.max(ch, opts.minCell); }  // every label readable (the wrap scrolls)
    if (cw >= 2) cw = Math.floor(cw);
    if (ch >= 2) ch = Math.floor(ch);
    cw = Math.max(cw, 0.25); ch = Math.max(ch, 0.25);
    const cell = Math.min(cw, ch);
    // values written in the cells: a matrix of small ones (attributions, ~1e-3) ×10^k, so they do not all read 0.00
    let big = 0;
    for (let i = 0; i < M.rows * M.cols; i++) { const a = Math.abs(M.data[i]); if (a > big && a < 1e30) big = a; }
    const k = cell >= 30 && !opts.noValues && big > 0 && big < 0.05 ? Math.ceil(-Math.log10(big)) : 0;
    const W = Math.ceil(left + M.cols * cw + right) + 2, H = Math.ceil(top + M.rows * ch) + 2 + (k ? 18 : 0);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    // cells: one pixel per cell off-screen, then scaled without smoothing
    const off = document.createElement('canvas');
    off.width = M.cols; off.height = M.rows;
    const octx = off.getContext('2d');
    const img = octx.createImageData(M.cols, M.rows);
    const px = img.data;
    for (let i = 0; i < M.rows * M.cols; i++) {
      const c = colorFor(M.data[i], sc);
      px[4 * i] = c[0]; px[4 * i + 1] = c[1]; px[4 * i + 2] = c[2]; px[4 * i + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = cell < 1;
    ctx.drawImage(off, left, top, M.cols * cw, M.rows * ch);
    // values inside big cells (as in the reference explorer's grids)
    if (cell >= 30 && !opts.noValues) {
      ctx.font = (cell >= 38 ? 11 : 10) + 'px ' + getComputedStyle(document.body).fontFamily;
      ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
      const times = Math.pow(10, k);
      for (let r = 0; r < M.rows; r++) for (let c = 0; c < M.cols; c++) {
        const v = M.data[r * M.cols + c];
        const col = colorFor(v, sc);
        const lum = 0.299 * col[0] + 0.587 * col[1] + 0.114 * col[2];
        ctx.fillStyle = lum > 150 ? '#1d2330' : '#ffffff';
        ctx.fillText(short(v <= -1e30 ? v : v * times), left + (c + 0.5) * cw, top + (r + 0.5) * ch);
      }
      if (k) {  // below the grid
        ctx.fillStyle = '#1d2330'; ctx.textAlign = 'left'; ctx.textBaseline = 'top';
        ctx.fillText('each cell shows its value × 10' + String(k).split('').map(d => '⁰¹²³⁴⁵⁶⁷⁸⁹'[+d]).join(''), left, top + M.rows * ch + 4);
      }
    }
    canvas.dataset.valueScale = String(k);
    if (!opts.noLabels) {
      ctx.fillStyle = '#4b5367';
      ctx.font = '11px ' + getComputedStyle(document.body).fontFamily;
      const rstep = Math.max(1, Math.ceil(11 / ch));
      ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
      for (let r = 0; r < M.rows; r += rstep) ctx.fillText(M.rowLabels[r], left - 4, top + (r + 0.5) * ch);
      const cstep = Math.max(1, Math.ceil(11 / cw));
      canvas.dataset.colLabelStep = String(cstep); canvas.dataset.cellWidth = String(cw);  // 1: every column labelled
      ctx.textAlign = 'left';
      for (let c = 0; c < M.cols; c += cstep) {
        ctx.save();
        ctx.translate(left + (c + 0.5) * cw, top - 4);
        ctx.rotate(-Math.PI / 3);
        ctx.fillText(M.colLabels[c], 0, 0);
        ctx.restore();
      }
      if (titles) {
        ctx.fillStyle = '#1d2330'; ctx.font = '600 11px ' + getComputedStyle(document.body).fontFamily;
        ctx.textAlign = 'left'; ctx.textBaseline = 'top';
        ctx.fillText((opts.colTitle || '') + ' →', left, 1);
        ctx.save(); ctx.translate(1, top + 2); ctx.rotate(Math.PI / 2); ctx.textBaseline = 'bottom';
        ctx.fillText((opts.rowTitle || '') + ' →', 0, -1); ctx.restore();
      }
    }
    canvas.setAttribute('aria-label', (opts.alt || 'heatmap') + ': ' + M.rows + ' ' + (M.rowName || 'rows') + ' × ' +
      M.cols + ' ' + (M.colName || 'columns') + '; ' + statsText(M.data) + '; colour scale ' + fmt(sc.vmin) + ' to ' + fmt(sc.vmax) +
      '; the arrow keys read the cells one by one');
    const mapper = (evt) => {
      const rect = canvas.getBoundingClientRect();
      const x = evt.clientX - rect.left - left, y = evt.clientY - rect.top - top;
      if (x < 0 || y < 0) return null;
      const c = Math.floor(x / cw), r = Math.floor(y / ch);
      if (r >= M.rows || c >= M.cols) return null;
      return { r, c, v: M.data[r * M.cols + c] };
    };
    mapper.geom = { left, top, cw, ch };  // where the cells are: the keyboard's cell outline
    return mapper;
  }

  /* A heatmap's value under the mouse (a tooltip and the line below it); by keyboard, the canvas takes the focus
     and the arrows (Home/End, PageUp/PageDown: 10 rows) move an outlined cell whose value the line below reads. */
  function attachHover(canvas, hoverDiv, getMapper, getM) {
    const say = (M, hit) => {
      hoverDiv.textContent = '[' + hit.r + ', ' + hit.c + '] ' + M.rowLabels[hit.r] + ' → ' + M.colLabels[hit.c] + ' = ' + fmt(hit.v);
      canvas.dataset.row = hit.r; canvas.dataset.col = hit.c; canvas.dataset.value = String(hit.v);
    };
    canvas.addEventListener('mousemove', (evt) => {
      const map = getMapper();
      const hit = map && map(evt);
      if (!hit) { hideTip(); return; }
      const M = getM();
      const text = (M.rowName || 'row') + ' ' + hit.r + ' ' + M.rowLabels[hit.r] + '  ×  ' +
        (M.colName || 'col') + ' ' + hit.c + ' ' + M.colLabels[hit.c] + '\n= ' + fmt(hit.v);
      showTip(evt, text);
      say(M, hit);
    });
    canvas.addEventListener('mouseleave', hideTip);
    canvas.tabIndex = 0;
    hoverDiv.setAttribute('aria-live', 'polite');
    const box = el('div', { class: 'cell-focus', hidden: '' });
    canvas.after(box);
    let at = null;  // [row, col] of the keyboard's cell
    const show = (dr, dc) => {
      const map = getMapper(), M = getM();
      if (!map || !map.geom || !M || !M.rows || !M.cols) return;
      const clamp = (v, n) => Math.max(0, Math.min(n - 1, v));
      at = at ? [clamp(at[0] + dr, M.rows), clamp(at[1] + dc, M.cols)] : [0, 0];
      const g = map.geom, [r, c] = at;
      Object.assign(box.style, { left: (canvas.offsetLeft + g.left + c * g.cw - 1) + 'px', top: (canvas.offsetTop + g.top + r * g.ch - 1) + 'px',
        width: Math.max(4, g.cw) + 2 + 'px', height: Math.max(4, g.ch) + 2 + 'px' });
      box.hidden = false;
      say(M, { r, c, v: M.data[r * M.cols + c] });
      box.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    };
    canvas.addEventListener('focus', () => show(0, 0));
    canvas.addEventListener('blur', () => { box.hidden = true; });
    canvas.addEventListener('keydown', (evt) => {
      const M = getM(), big = 10;
      const d = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0], PageUp: [-big, 0], PageDown: [big, 0],
        Home: [0, -Infinity], End: [0, Infinity] }[evt.key];
      if (!d || !M) return;
      evt.preventDefault();
      show(d[0], Math.max(-M.cols, Math.min(M.cols, d[1])));
    });
  }

  /* A 2-D view of a tensor slice: picks the leading indices, crops padding on token axes. */
  function matrixOf(t, dims, sliceIdx, info, showPad, rowsOffset) {
    let shape = t.shape.slice(), data = t.data, d = dims.slice();
    let lead = 0;
    while (shape.length > 2) {
      const i = Math.min(sliceIdx[lead] || 0, shape[0] - 1);
      const per = prod(shape.slice(1));
      data = data.subarray(i * per, (i + 1) * per);
      shape = shape.slice(1); d = d.slice(1); lead++;
    }
    if (shape.length === 1) { shape = [1, shape[0]]; d = ['', d[0]]; }
    if (shape.length === 0) { shape = [1, 1]; d = ['', '']; }
    let rows = shape[0], cols = shape[1];
    const keepR = (!showPad && d[0] === 'token') ? Math.min(rows, info.length) : rows;
    const keepC = (!showPad && d[1] === 'token') ? Math.min(cols, info.length) : cols;
    let out = data;
    if (keepR !== rows || keepC !== cols) {
      out = new Float32Array(keepR * keepC);
      for (let r = 0; r < keepR; r++) out.set(data.subarray(r * cols, r * cols + keepC), r * keepC);
    }
    let rowLabels = d[0] === '' ? [''] : labelsFor(d[0], keepR + (rowsOffset || 0), info).slice(rowsOffset || 0);
    if (d[0] !== '' && d[0] !== 'token' && d[0] !== 'masked' && d[0] !== 'head' && d[0] !== 'vocab' && rowsOffset) {
      rowLabels = rowLabels.map((_, i) => String(i + rowsOffset));
    }
    return { rows: keepR, cols: keepC, data: out, rowLabels, colLabels: labelsFor(d[1], keepC, info),
      rowName: d[0] || 'row', colName: d[1] || 'col', rowsTotal: rows, colsTotal: cols };
  }

  function statsText(data) {
    let mn = Infinity, mx = -Infinity, s = 0, s2 = 0, n = 0, masked = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (!(v > -1e30 && v < 1e30)) { masked++; continue; }
      if (v < mn) mn = v; if (v > mx) mx = v; s += v; s2 += v * v; n++;
    }
    if (!n) return 'no finite values';
    const mean = s / n, std = Math.sqrt(Math.max(0, s2 / n - mean * mean));
    return 'min ' + fmt(mn) + ' · max ' + fmt(mx) + ' · mean ' + fmt(mean) + ' · std ' + fmt(std) +
      (masked ? ' · ' + masked + ' masked (−∞)' : '');
  }

  Object.assign(GB, { colorFor, scaleFor, colorbar, labelsFor, drawHeatmap, attachHover, matrixOf, statsText });
})();
