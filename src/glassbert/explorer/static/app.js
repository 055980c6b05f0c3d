/* glassbert explorer: vanilla JS, no dependencies, no network beyond this page's own server.
   Data comes from the embedded <script id="glassbert-data"> block (exported file) or from the
   read-only /api of `glassbert explore`. Tensors are fetched lazily, one (snapshot, name, sample)
   at a time, and cached. */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const SVGNS = $('arch-svg').namespaceURI; // the HTML parser put it there: no namespace URL in this file
  const MAX_CELLS = 600000;                 // a heatmap never draws more cells than this at once
  const PALETTE = ['#3457d5', '#e0761a', '#1a8f4f', '#c8382f', '#7a4fd6', '#0f8b9a', '#b0831c', '#d14d8f'];

  const S = {
    man: null, metrics: [], embedded: null,
    snap: 0, sample: 0,
    tensor: null, slice: {}, archLayer: 0,
    layer: 0, head: 0, kind: 'attention', showPad: false,
    diffB: 0, diffA: 0, diffFollow: true, diffLock: false, attrTarget: 0, stretch: false, rowStart: 0,
    neuronQuery: 0, xKey: 'epoch',
    timer: null,
    whatif: null, wiShow: true, wiMask: [], wiAsked: null,  // the live what-if: its answer, shown or not, masked positions
  };
  /* The views show the what-if input (its activations, the run's weights) instead of a recorded sample. */
  const wiActive = () => !!(S.whatif && S.wiShow);
  const gens = {};
  const nextGen = (view) => (gens[view] = (gens[view] || 0) + 1);
  const isCurrent = (view, g) => gens[view] === g;

  // ------------------------------------------------------------------ data
  const F16 = (() => {
    const t = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
      if (e === 0) t[h] = s * f * Math.pow(2, -24);
      else if (e === 31) t[h] = f ? NaN : s * Infinity;
      else t[h] = s * (1 + f / 1024) * Math.pow(2, e - 15);
    }
    return t;
  })();

  function b64bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function decodeTyped(dtype, bytes) {
    const buf = bytes.buffer;
    if (dtype === 'f32') return new Float32Array(buf, 0, bytes.length / 4);
    if (dtype === 'f16') {
      const u = new Uint16Array(buf, 0, bytes.length / 2);
      const out = new Float32Array(u.length);
      for (let i = 0; i < u.length; i++) out[i] = F16[u[i]];
      return out;
    }
    if (dtype === 'bf16') {
      const u = new Uint16Array(buf, 0, bytes.length / 2);
      const w = new Uint32Array(u.length);
      for (let i = 0; i < u.length; i++) w[i] = u[i] << 16;
      return new Float32Array(w.buffer);
    }
    if (dtype === 'i32') return Float32Array.from(new Int32Array(buf, 0, bytes.length / 4));
    if (dtype === 'i64') {
      const v = new Int32Array(buf, 0, bytes.length / 4);
      const out = new Float32Array(v.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = v[2 * i];
      return out;
    }
    throw new Error('unknown dtype ' + dtype);
  }

  const cache = new Map();
  const embeddedFull = new Map();
  const prod = (a) => a.reduce((x, y) => x * y, 1);

  /* The exported file stores each tensor deflated (float ones as float16, their bytes split high/low, and
     XOR-ed with the same tensor of the previous snapshot when "delta" says so: training moves few bits between
     snapshots). Decoding snapshot k of a delta tensor needs snapshot k−1 of it first; each is decoded once. */
  const rawBits = new Map();
  async function inflate(b64) {
    const stream = new Blob([b64bytes(b64)]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  function embeddedBits(snap, key) {
    const fk = snap + '|' + key;
    if (rawBits.has(fk)) return rawBits.get(fk);
    const e = (S.embedded.tensors[snap] || {})[key];
    if (!e) return Promise.reject(new Error(key + ' is not in this export'));
    const p = (async () => {
      const bytes = e.z ? await inflate(e.b64) : b64bytes(e.b64);
      if (!e.split) return bytes;
      const n = bytes.length / 2, out = new Uint8Array(bytes.length);
      for (let i = 0; i < n; i++) { out[2 * i] = bytes[i]; out[2 * i + 1] = bytes[n + i]; }
      if (e.delta) {
        const prev = new Uint16Array((await embeddedBits(snap - 1, key)).buffer.slice(0));
        const cur = new Uint16Array(out.buffer);
        for (let i = 0; i < cur.length; i++) cur[i] ^= prev[i];
      }
      return out;
    })();
    rawBits.set(fk, p);
    return p;
  }
  function embeddedTensor(snap, key) {
    const fk = snap + '|' + key;
    if (!embeddedFull.has(fk)) {
      const e = (S.embedded.tensors[snap] || {})[key];
      embeddedFull.set(fk, e ? embeddedBits(snap, key).then((bytes) => ({ shape: e.shape, data: decodeTyped(e.dtype, bytes) }))
        : Promise.reject(new Error(key + ' is not in this export')));
    }
    return embeddedFull.get(fk);
  }

  function tensorMeta(name) {
    const wi = wiActive() && S.whatif.man.tensors[name];
    return wi || S.man.tensors[name] || null;
  }
  function storedKey(snap, name) {
    const al = (S.man.snapshots[snap] || {}).aliases || {};
    return al[name] || name;
  }

  function getTensor(snap, name, sample, rows) {
    const meta = tensorMeta(name);
    if (!meta) return Promise.reject(new Error(notRecordedWhy(name)));
    const isAct = meta.kind === 'activation';
    const wi = isAct && wiActive() ? S.whatif : null;  // the what-if's own recording (one sample, one snapshot)
    const key = [wi ? 'whatif' + wi.id : snap, name, isAct ? sample : '-', rows ? rows.join(':') : ''].join('|');
    if (cache.has(key)) return cache.get(key);
    let p;
    const derived = !wi && S.embedded && (S.man.export_derived || {})[name];
    if (derived) {
      p = Promise.all(derived.from.map((n) => getTensor(snap, n, sample))).then((src) => {
        let t = derive(derived, src);
        if (rows) {
          const per = prod(t.shape.slice(1)), stop = Math.min(rows[1], t.shape[0]);
          t = { shape: [stop - rows[0]].concat(t.shape.slice(1)), data: t.data.subarray(rows[0] * per, stop * per) };
        }
        return t;
      });
    } else if (S.embedded) {
      p = embeddedTensor(snap, storedKey(snap, name)).then((full) => {
        let shape = full.shape.slice(), data = full.data;
        if (isAct && shape.length === meta.shape.length + 1) {
          const per = prod(shape.slice(1));
          data = data.subarray(sample * per, (sample + 1) * per);
          shape = shape.slice(1);
        }
        if (rows) {
          const per = prod(shape.slice(1));
          const stop = Math.min(rows[1], shape[0]);
          data = data.subarray(rows[0] * per, stop * per);
          shape = [stop - rows[0]].concat(shape.slice(1));
        }
        return { shape, data };
      });
    } else {
      let url = 'api/tensor?format=bin&snap=' + (wi ? 0 : snap) + '&name=' + encodeURIComponent(name);
      if (wi) url += '&whatif=' + wi.id + '&sample=0';
      else if (isAct) url += '&sample=' + sample;
      if (rows) url += '&rows=' + rows[0] + ':' + rows[1];
      p = fetch(url).then(async (r) => {
        if (!r.ok) {
          let msg = r.status + ' ' + r.statusText;
          try { msg = (await r.json()).message || msg; } catch (e) { /* keep status */ }
          throw new Error(msg);
        }
        const shapeText = r.headers.get('X-Shape') || '';
        const shape = shapeText ? shapeText.split(',').map(Number) : [];
        return { shape, data: new Float32Array(await r.arrayBuffer()) };
      });
    }
    p.catch(() => cache.delete(key));
    cache.set(key, p);
    if (cache.size > 600) cache.delete(cache.keys().next().value);
    return p;
  }

  /* The tensors an export leaves out because they rearrange or add up others (manifest.export_derived). */
  function derive(d, src) {
    const a = src[0], [x, y, z] = a.shape;
    if (d.op === 'scale') return { shape: a.shape, data: a.data.map((v) => v * d.factor) };
    if (d.op === 'add_mask') {                     // (h, T, T) + mask over keys (T): −∞ where a key is [PAD]
      const m = src[1].data, out = new Float32Array(a.data.length);
      for (let i = 0; i < out.length; i++) out[i] = m[i % z] <= -1e30 ? -Infinity : a.data[i] + m[i % z];
      return { shape: a.shape, data: out };
    }
    const out = new Float32Array(a.data.length);
    if (d.op === 'transpose') {                    // (h, T, d) → (h, d, T)
      for (let h = 0; h < x; h++) for (let t = 0; t < y; t++) for (let k = 0; k < z; k++) out[h * y * z + k * y + t] = a.data[h * y * z + t * z + k];
      return { shape: [x, z, y], data: out };
    }
    for (let h = 0; h < x; h++) for (let t = 0; t < y; t++) for (let k = 0; k < z; k++) out[t * x * z + h * z + k] = a.data[h * y * z + t * z + k];
    return { shape: d.op === 'heads_concat' ? [y, x * z] : [y, x, z], data: out };  // (h, T, d) → (T, h, d) | (T, h·d)
  }

  function notRecordedWhy(name) {
    if ((S.man.export_dropped || []).includes(name)) return name + ': left out of this export (size bound)';
    if ((S.man.dropped || []).includes(name)) return name + ': dropped by the recorder to respect the size bound';
    return name + ': not recorded';
  }

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k in attrs) {
      if (k === 'class') e.className = attrs[k]; else if (k === 'dataset') Object.assign(e.dataset, attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return 'NaN';
    if (v <= -1e30) return '−∞ (masked)';
    if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(3);
    return Number(v.toPrecision(4)).toString();
  }
  function short(v) {
    if (v <= -1e30) return '−∞';
    if (Number.isNaN(v)) return '';
    const a = Math.abs(v);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return a < 0.005 ? '0.00' : v.toFixed(2);  // no "-0.00"
  }
  function vocabToken(id) {
    const v = S.man.vocab;
    if (Array.isArray(v)) return v[id] !== undefined ? v[id] : '#' + id;
    return v && v[String(id)] !== undefined ? v[String(id)] : '#' + id;
  }
  function sampleInfo() { return wiActive() ? S.whatif.man.samples[0] : S.man.samples[S.sample]; }
  function sampleName() { return wiActive() ? 'what-if input' : 'sample ' + S.man.samples[S.sample].index; }
  function snapLabel(i) {
    const s = S.man.snapshots[i];
    return s ? 'epoch ' + s.epoch + ' · step ' + s.step : '—';
  }
  /* A snapshot's short name for a row label: its epoch, or its step where several snapshots share an epoch
     (a fine-tuning run recorded every N steps). */
  function snapShort(i) {
    const snaps = S.man.snapshots, s = snaps[i];
    const byStep = new Set(snaps.map((x) => x.epoch)).size < snaps.length;
    return s ? (byStep ? 'step ' + s.step : 'epoch ' + s.epoch) : '—';
  }
  const tooltip = $('tooltip');
  function showTip(evt, text) {
    tooltip.textContent = text;
    tooltip.style.left = (evt.clientX + 14) + 'px';
    tooltip.style.top = (evt.clientY + 12) + 'px';
    tooltip.classList.add('on');
  }
  function hideTip() { tooltip.classList.remove('on'); }
  function setStatus(msg) { $('status').textContent = msg || ''; }
  function cfg(k, d) { const c = S.man.config || {}; return c[k] !== undefined && c[k] !== null ? c[k] : d; }
  // the pair head's classes 0 and 1: BERT's NSP, or ALBERT's sentence order (manifest.pair_labels)
  function pairNames() { return S.man.pair_labels || ['IsNext', 'NotNext']; }

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
  function colorFor(v, sc) {
    if (!(v > -1e30) || !Number.isFinite(v)) return [210, 212, 218];
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
    if (cw >= 2) cw = Math.floor(cw);
    if (ch >= 2) ch = Math.floor(ch);
    cw = Math.max(cw, 0.25); ch = Math.max(ch, 0.25);
    const cell = Math.min(cw, ch);
    const W = Math.ceil(left + M.cols * cw + right) + 2, H = Math.ceil(top + M.rows * ch) + 2;
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
      for (let r = 0; r < M.rows; r++) for (let c = 0; c < M.cols; c++) {
        const v = M.data[r * M.cols + c];
        const col = colorFor(v, sc);
        const lum = 0.299 * col[0] + 0.587 * col[1] + 0.114 * col[2];
        ctx.fillStyle = lum > 150 ? '#1d2330' : '#ffffff';
        ctx.fillText(short(v), left + (c + 0.5) * cw, top + (r + 0.5) * ch);
      }
    }
    if (!opts.noLabels) {
      ctx.fillStyle = '#4b5367';
      ctx.font = '11px ' + getComputedStyle(document.body).fontFamily;
      const rstep = Math.max(1, Math.ceil(11 / ch));
      ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
      for (let r = 0; r < M.rows; r += rstep) ctx.fillText(M.rowLabels[r], left - 4, top + (r + 0.5) * ch);
      const cstep = Math.max(1, Math.ceil(11 / cw));
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
      M.cols + ' ' + (M.colName || 'columns') + '; ' + statsText(M.data) + '; colour scale ' + fmt(sc.vmin) + ' to ' + fmt(sc.vmax));
    return (evt) => {
      const rect = canvas.getBoundingClientRect();
      const x = evt.clientX - rect.left - left, y = evt.clientY - rect.top - top;
      if (x < 0 || y < 0) return null;
      const c = Math.floor(x / cw), r = Math.floor(y / ch);
      if (r >= M.rows || c >= M.cols) return null;
      return { r, c, v: M.data[r * M.cols + c] };
    };
  }

  function attachHover(canvas, hoverDiv, getMapper, getM) {
    canvas.addEventListener('mousemove', (evt) => {
      const map = getMapper();
      const hit = map && map(evt);
      if (!hit) { hideTip(); return; }
      const M = getM();
      const text = (M.rowName || 'row') + ' ' + hit.r + ' ' + M.rowLabels[hit.r] + '  ×  ' +
        (M.colName || 'col') + ' ' + hit.c + ' ' + M.colLabels[hit.c] + '\n= ' + fmt(hit.v);
      showTip(evt, text);
      hoverDiv.textContent = '[' + hit.r + ', ' + hit.c + '] ' + M.rowLabels[hit.r] + ' → ' + M.colLabels[hit.c] + ' = ' + fmt(hit.v);
      canvas.dataset.row = hit.r; canvas.dataset.col = hit.c; canvas.dataset.value = String(hit.v);
    });
    canvas.addEventListener('mouseleave', hideTip);
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

  // ------------------------------------------------------------------ header, input, config
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

  const CONVENTION = 'Where glassbert differs from "Exploring BERT": here IsNext = True means the second sentence follows the ' +
    'first (class 0 of the NSP head, as in BERT); the article\'s IsNext column reads the other way (False = the pair is connected).';
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
  // The diagram is drawn from the model's capture catalogue (manifest.catalogue): each module's table
  // says which of its points are boxes (block), in which group, row and chain, and which weight feeds it.
  function catalogue() { return S.man.catalogue || []; }
  function catEntry(name) { return catalogue().find((e) => e.name === name || e.weight === name) || null; }
  /* The layers (1-based) that run weight ``name``: more than one in an ALBERT, whose layers share weights (one
     snapshot of the weight, the same in every such layer; the activations differ). */
  function sharedLayers(name) {
    return [...new Set(catalogue().filter((e) => e.weight === name && e.layer !== null && e.layer !== undefined)
      .map((e) => e.layer + 1))];
  }
  function sharedNote(name, prefix) {
    const by = name ? sharedLayers(name) : [];
    return by.length > 1 ? prefix + 'shared by layers ' + by.join(', ') : '';
  }
  function byRole(role, layer) {
    const e = catalogue().find((x) => x.role === role && (layer === undefined || x.layer === layer));
    return e ? e.name : null;
  }

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
            const bEl = sv('g', { class: cls, 'data-name': b.name, tabindex: meta ? '0' : '-1' });
            bEl.append(sv('rect', { x, y, width: w, height: BH, rx: 6 }));
            bEl.append(sv('text', { x: x + w / 2, y: y + 15, 'text-anchor': 'middle' }, b.label));
            bEl.append(sv('text', { class: 'shape', x: x + w / 2, y: y + 29, 'text-anchor': 'middle' }, shp));
            bEl.append(sv('title', null, b.name + (meta ? '\n' + meta.label : '\n' + notRecordedWhy(b.name))));
            if (meta) {
              bEl.addEventListener('click', () => openTensor(b.name));
              bEl.addEventListener('keydown', (e) => { if (e.key === 'Enter') openTensor(b.name); });
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
    svg.setAttribute('viewBox', '0 0 ' + maxW + ' ' + y);
    svg.setAttribute('width', maxW);
    svg.setAttribute('height', y);
  }

  // ------------------------------------------------------------------ matrix view
  let matrixMapper = null, matrixM = null;
  function openTensor(name, scroll) {
    S.tensor = name;
    S.slice = {};
    const e = catEntry(name);
    if (e && e.layer !== null && e.layer !== undefined) S.archLayer = e.layer;
    S.rowStart = 0; $('row-jump').value = '';
    renderArch();
    renderMatrix();
    renderDiff();
    saveState();
    // one column (≤ 1000 px): the tensor is drawn below the diagram; bring it into view
    const r = $('matrix-view').getBoundingClientRect();
    if (scroll !== false && (r.top > window.innerHeight - 80 || r.bottom < 80)) $('matrix-view').scrollIntoView({ block: 'start' });
  }

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

  function rowsWindow(meta, start) {
    if (meta.shape.length !== 2) return null;
    const [r, c] = meta.shape;
    if (r * c <= MAX_CELLS) return null;
    const n = Math.max(1, Math.floor(MAX_CELLS / c)), a = Math.max(0, Math.min(start || 0, r - n));
    return [a, a + n];
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

  // ------------------------------------------------------------------ attention view
  let attnMapper = null, attnM = null;
  function attnName(role) { return byRole(role || S.kind, S.layer); }

  function setupAttentionControls() {
    const ls = $('layer-select'), hs = $('head-select');
    ls.innerHTML = ''; hs.innerHTML = '';
    for (let l = 0; l < cfg('num_hidden_layers', 1); l++) {
      const at = catalogue().find((e) => e.role === 'attention' && e.layer === l);
      const where = at ? /^(.*?layers?\.\d+)/.exec(at.module.slice((S.man.prefix || '').length)) : null;
      ls.append(el('option', { value: l }, 'Layer ' + (l + 1) + (where ? ' (' + where[1] + ')' : '')));
    }
    for (let h = 0; h < cfg('num_attention_heads', 1); h++) hs.append(el('option', { value: h }, 'Head h' + h));
    ls.onchange = () => { S.layer = Number(ls.value); renderAttention(); saveState(); };
    hs.onchange = () => { S.head = Number(hs.value); renderAttention(); saveState(); };
    $('attn-kind').onchange = () => { S.kind = $('attn-kind').value; renderAttention(); saveState(); };
    for (const o of $('attn-kind').options) o.disabled = !catalogue().some((e) => e.role === o.value);
    $('show-pad').onchange = () => {
      S.showPad = $('show-pad').checked; $('matrix-pad').checked = S.showPad;
      renderAttention(); renderMatrix(); renderDiff(); saveState();
    };
  }

  const KIND_LABEL = { attention: 'attention probabilities', attention_scores: 'scaled scores QKᵀ/√d',
    attention_masked: 'masked scores QKᵀ/√d + mask' };
  /* Probabilities on the fixed 0–1 scale (uniform attention reads as dark, not as "maximum"), unless the
     user stretches them to this head's max; scores on a symmetric scale around 0. */
  function attnScale(data) {
    if (S.kind !== 'attention') return scaleFor(data, true);
    if (!S.stretch) return { diverging: false, vmin: 0, vmax: 1, lo: 0, hi: 1, clipped: false };
    const sc = scaleFor(data, false);
    return Object.assign(sc, { vmin: 0, clipped: false });
  }

  async function renderAttention() {
    const g = nextGen('attention');
    $('layer-select').value = String(S.layer);
    $('head-select').value = String(S.head);
    const name = attnName();
    const info = sampleInfo();
    if (!tensorMeta(name)) { $('attention-hover').textContent = notRecordedWhy(name); return; }
    try {
      const t = await getTensor(S.snap, name, S.sample);
      const probsName = attnName('attention');
      const pt = S.kind === 'attention' ? t : (tensorMeta(probsName) ? await getTensor(S.snap, probsName, S.sample) : null);
      if (!isCurrent('attention', g)) return;
      const nh = t.shape[0];
      // thumbnails: every head of this layer
      const thumbs = $('head-thumbs');
      thumbs.innerHTML = '';
      for (let h = 0; h < nh; h++) {
        const Mh = matrixOf(t, ['head', 'token', 'token'], [h], info, S.showPad);
        const box = el('div', { class: 'thumb' + (h === S.head ? ' on' : ''), 'data-head': h });
        const c = el('canvas');
        drawHeatmap(c, Mh, attnScale(Mh.data), { maxW: 72, maxH: 72, noLabels: true, noValues: true,
          alt: 'head h' + h + ' of layer ' + (S.layer + 1) });
        box.append(c, el('span', null, 'h' + h));
        box.onclick = () => { S.head = h; renderAttention(); saveState(); };
        thumbs.append(box);
      }
      const M = matrixOf(t, ['head', 'token', 'token'], [S.head], info, S.showPad);
      M.rowName = 'query'; M.colName = 'key';
      attnM = M;
      const sc = attnScale(M.data);
      const where = 'layer ' + (S.layer + 1) + ' · head h' + S.head + ' · ' + sampleName() + ' · ' + snapLabel(S.snap);
      $('attention-title').textContent = KIND_LABEL[S.kind] + ' · ' + where;
      attnMapper = drawHeatmap($('attention-canvas'), M, sc, { maxW: Math.min(620, $('attention-view').clientWidth - 40), maxH: 620,
        rowTitle: 'query', colTitle: 'key', alt: KIND_LABEL[S.kind] + ', ' + where });
      colorbar($('attention-colorbar'), sc);
      const values = [];
      for (let r = 0; r < M.rows; r++) values.push(Array.from(M.data.subarray(r * M.cols, (r + 1) * M.cols)));
      const snap = S.man.snapshots[S.snap];
      $('attention-values').textContent = JSON.stringify({
        name, snap: S.snap, epoch: snap.epoch, step: snap.step, sample: S.sample, layer: S.layer, head: S.head,
        whatif: wiActive() ? S.whatif.id : null,
        kind: S.kind, tokens: M.rowLabels, values });
      const cv = $('attention-canvas');
      cv.dataset.layer = S.layer; cv.dataset.head = S.head; cv.dataset.snap = S.snap;
      $('attention-hover').textContent = where + ' · ' + statsText(M.data);
      if (pt) drawHeadView(matrixOf(pt, ['head', 'token', 'token'], [S.head], info, S.showPad), where);
      renderNeuron();
    } catch (e) {
      if (isCurrent('attention', g)) $('attention-hover').textContent = String(e.message || e);
    }
  }

  /* bertviz's neuron view: for one query token, q·k of every key split into its head_dim products q_d·k_d;
     the last column is the score they add up to, ÷√d (the scaled score the softmax sees before the mask). */
  let neuronMapper = null, neuronM = null;
  async function renderNeuron() {
    const box = $('neuron-details');
    const probs = attnName('attention');
    if (!box.open || !probs) return;
    const base = probs.replace(/probs$/, ''), qn = base + 'query', kn = base + 'key';
    if (!tensorMeta(qn) || !tensorMeta(kn)) { $('neuron-hover').textContent = notRecordedWhy(tensorMeta(qn) ? kn : qn); return; }
    const g = nextGen('neuron'), info = sampleInfo();
    const [q, k] = await Promise.all([getTensor(S.snap, qn, S.sample), getTensor(S.snap, kn, S.sample)]);
    if (!isCurrent('neuron', g)) return;
    const [, T, d] = q.shape, n = S.showPad ? T : Math.min(T, info.length);
    const sel = $('neuron-query');
    if (sel.options.length !== n) {
      sel.innerHTML = '';
      for (let i = 0; i < n; i++) sel.append(el('option', { value: i }, i + ' ' + info.tokens[i]));
    }
    S.neuronQuery = Math.min(S.neuronQuery, n - 1);
    sel.value = String(S.neuronQuery);
    const qi = S.head * T * d + S.neuronQuery * d, data = new Float32Array(n * (d + 1));
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < d; c++) { const v = q.data[qi + c] * k.data[S.head * T * d + j * d + c]; data[j * (d + 1) + c] = v; sum += v; }
      data[j * (d + 1) + d] = sum / Math.sqrt(d);
    }
    neuronM = { rows: n, cols: d + 1, data, rowLabels: info.tokens.slice(0, n),
      colLabels: Array.from({ length: d }, (_, c) => 'q' + c + '·k' + c).concat(['Σ ÷ √d']), rowName: 'key', colName: 'dimension' };
    const sc = scaleFor(data, true);
    neuronMapper = drawHeatmap($('neuron-canvas'), neuronM, sc, { maxW: Math.min(900, $('attention-view').clientWidth - 40), maxH: 560,
      rowTitle: 'key', colTitle: 'q × k per dimension', alt: 'neuron view of query ' + info.tokens[S.neuronQuery] });
    colorbar($('neuron-colorbar'), sc);
  }

  const TOP_LINKS = 3;
  function drawHeadView(M, where) {
    const svg = $('head-view');
    svg.innerHTML = '';
    const n = M.rows, rowH = Math.max(4.5, Math.min(22, 640 / Math.max(1, n)));
    const every = Math.max(1, Math.ceil(11 / rowH));  // label every k-th token when rows are thin
    const W = 360, H = n * rowH + 10, xl = 110, xr = W - 110;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('width', W); svg.setAttribute('height', H);
    const lines = [];
    svg.setAttribute('aria-label', 'head view, ' + (where || '') + ': each query token linked to its ' + TOP_LINKS + ' strongest keys');
    for (let i = 0; i < n; i++) {
      // each query's TOP_LINKS strongest keys, opacity = the weight itself (0–1): near-uniform rows stay faint
      const row = Array.from(M.data.subarray(i * M.cols, (i + 1) * M.cols)).map((w, j) => [w, j]).filter((x) => x[0] > 0.01);
      row.sort((a, b) => b[0] - a[0]);
      for (const [w, j] of row.slice(0, TOP_LINKS)) {
      const ln = sv('line', { x1: xl + 4, y1: 8 + (i + 0.5) * rowH, x2: xr - 4, y2: 8 + (j + 0.5) * rowH,
        'stroke-opacity': (0.12 + 0.88 * Math.min(1, w)).toFixed(3), 'stroke-width': (1 + 2.5 * w).toFixed(2), 'data-from': i, 'data-to': j });
      ln.append(sv('title', null, M.rowLabels[i] + ' → ' + M.colLabels[j] + ' = ' + fmt(w)));
      lines.push(ln);
      svg.append(ln);
    } }
    const focus = (i) => { for (const ln of lines) ln.style.display = i === null || Number(ln.dataset.from) === i ? '' : 'none'; };
    for (let i = 0; i < n; i++) {
      // an invisible hover band per row, so thin rows can still be focused
      const band = sv('rect', { x: 0, y: 8 + i * rowH, width: xl, height: rowH, fill: 'transparent' });
      band.addEventListener('mouseenter', () => focus(i));
      band.addEventListener('mouseleave', () => focus(null));
      band.append(sv('title', null, i + ' ' + M.rowLabels[i]));
      svg.append(band);
      if (i % every) continue;
      const fs = rowH < 11 ? 10 : 12;
      svg.append(sv('text', { x: xl - 4, y: 8 + (i + 0.5) * rowH + fs / 3, 'text-anchor': 'end', 'font-size': fs, 'pointer-events': 'none' }, M.rowLabels[i]));
      svg.append(sv('text', { x: xr + 4, y: 8 + (i + 0.5) * rowH + fs / 3, 'text-anchor': 'start', 'font-size': fs }, M.colLabels[i] !== undefined ? M.colLabels[i] : ''));
    }
  }

  // ------------------------------------------------------------------ predictions
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
    S.man.samples.forEach((info, i) => {
      const p = (snap.predictions || [])[i] || {}, first = (S.man.snapshots[0].predictions || [])[i] || {};
      const tr = el('tr', { class: i === S.sample ? 'cur' : '', 'data-sample': i });
      tr.onclick = () => selectSample(i);
      const text = info.text.length > 80 ? info.text.slice(0, 78) + '…' : info.text;
      tr.append(el('td', null, String(info.index)), el('td', null, text));
      if (!p.label_probs) { tr.append(el('td', null, '—')); tbl.append(tr); return; }
      const gold = info.label, right = gold === undefined ? null : p.label_pred === gold;
      tr.append(el('td', { class: 'mono' }, labelName(p.label_pred) + ' ' + (100 * p.label_probs[p.label_pred]).toFixed(1) + '%'));
      tr.append(el('td', { class: 'mono' }, gold === undefined ? '—' : labelName(gold)));
      tr.append(el('td', { class: right === null ? '' : right ? 'ok' : 'no' }, right === null ? '' : right ? '✓' : '✗'));
      tr.append(el('td', { class: 'mono' }, gold === undefined || !first.label_probs ? '—'
        : (100 * first.label_probs[gold]).toFixed(1) + '% → ' + (100 * p.label_probs[gold]).toFixed(1) + '%'));
      if (right !== null) { all++; if (right) ok++; }
      tbl.append(tr);
    });
    if (all) $('pred-sub').textContent += ' · right ' + ok + '/' + all;
    $('pred-note').textContent = 'How the attention changed: the attention view follows the slider; "compare" puts this layer\'s ' +
      'attention now (A) beside the first snapshot (B).';
    const btn = el('button', { type: 'button', id: 'pred-compare' }, 'compare the attention with the first snapshot ↓');
    btn.onclick = () => { openTensor(attnName('attention'), false); S.diffB = 0; renderDiff(); $('diff-view').scrollIntoView({ block: 'start' }); };
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
    S.man.samples.forEach((info, i) => {
      const p = (snap.predictions || [])[i] || {};
      const tr = el('tr', { class: i === S.sample ? 'cur' : '', 'data-sample': i });
      tr.onclick = () => selectSample(i);
      const real = info.tokens.slice(0, info.length).join(' ');
      tr.append(el('td', null, String(info.index)), el('td', { class: 'mono' }, real.length > 80 ? real.slice(0, 78) + '…' : real));
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
      if (pred.length && truth.length) { allWords += truth.length; okWords += pred.filter((id, k) => id === truth[k]).length; }
      tr.append(td, tdA, el('td', { class: wordsOk === null ? '' : wordsOk ? 'ok' : 'no' }, wordsOk === null ? '' : wordsOk ? '✓' : '✗'));
      const np = p.is_next_pred, na = info.is_next;
      tr.append(el('td', null, np === undefined ? '—' : (np ? 'True' : 'False') + (p.is_next_prob !== undefined ? ' (' + (100 * p.is_next_prob).toFixed(0) + '% ' + pairNames()[0] + ')' : '')));
      tr.append(el('td', null, na === null || na === undefined ? '—' : na ? 'True' : 'False'));
      const nspOk = np === undefined || na === null || na === undefined ? null : np === na;
      if (nspOk !== null) { allNsp++; if (nspOk) okNsp++; }
      tr.append(el('td', { class: nspOk === null ? '' : nspOk ? 'ok' : 'no' }, nspOk === null ? '' : nspOk ? '✓' : '✗'));
      tbl.append(tr);
    });
    const parts = [];
    if (allWords) parts.push('masked words ' + okWords + '/' + allWords);
    if (allNsp) parts.push(pairNames()[0] + ' ' + okNsp + '/' + allNsp);
    if (parts.length) $('pred-sub').textContent += ' · ' + parts.join(' · ');
    $('pred-note').textContent = allNsp ? CONVENTION : '';
  }

  // ------------------------------------------------------------------ curves
  function renderCurves() {
    const box = $('curves');
    box.innerHTML = '';
    const rows = S.metrics || [];
    if (!rows.length) { box.append(el('div', { class: 'muted' }, 'no metrics file in this run')); return; }
    const xKey = rows.some((r) => typeof r.step === 'number') ? 'step' : rows.some((r) => typeof r.epoch === 'number') ? 'epoch' : null;
    $('curves-sub').textContent = rows.length + ' rows · x = ' + (xKey || 'row');
    const skip = new Set(['step', 'epoch', 'time', 'elapsed', 'wall', 'timestamp', 'samples', 'tokens']);
    const keys = new Set();
    for (const r of rows) for (const k in r) if (typeof r[k] === 'number' && !skip.has(k)) keys.add(k);
    const groups = [['loss', [...keys].filter((k) => /loss|ppl|perplex/i.test(k))],
      ['accuracy', [...keys].filter((k) => /acc|f1|exact/i.test(k))]];
    const used = new Set(groups.flatMap((g) => g[1]));
    for (const k of [...keys].filter((k) => !used.has(k))) groups.push([k, [k]]);  // lr, grad norm, tokens/s: each its own axis
    const snap = S.man.snapshots[S.snap];
    const marker = snap ? (xKey === 'epoch' ? snap.epoch : snap.step) : null;
    for (const [title, ks] of groups) if (ks.length) box.append(lineChart(title, rows, xKey, ks, marker, title === 'loss' && $('curves-log').checked));
  }

  function lineChart(title, rows, xKey, keys, marker, log) {
    const W = 560, H = 190, R = 14, T = 24, B = 30;
    const svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'xMidYMid meet', 'data-chart': title, role: 'img' });
    const xs = rows.map((r, i) => (xKey && typeof r[xKey] === 'number' ? r[xKey] : i));
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    if (x1 === x0) x1 = x0 + 1;
    let y0 = Infinity, y1 = -Infinity;
    const ok = (v) => typeof v === 'number' && Number.isFinite(v) && (!log || v > 0);
    for (const r of rows) for (const k of keys) if (ok(r[k])) { y0 = Math.min(y0, r[k]); y1 = Math.max(y1, r[k]); }
    if (y0 === Infinity) return svg;
    if (title === 'accuracy') { y0 = Math.min(0, y0); y1 = Math.max(1, y1); }
    const f = log ? Math.log10 : (v) => v;
    let t0 = f(y0), t1 = f(y1);
    if (t1 === t0) {  // a constant (the demo's learning rate): drawn at mid-height on an axis that shows its value
      if (log) { t0 -= 1; t1 += 1; } else if (t0 === 0) { t1 = 1; } else { const a = Math.abs(t0); t0 -= a; t1 += a; }
    }
    if (title === 'loss' && !log) t0 = Math.min(0, t0);
    const yticks = log ? niceTicks(Math.floor(t0), Math.ceil(t1), 4).filter((v) => Number.isInteger(v)) : niceTicks(t0, t1, 4);
    if (log) { t0 = Math.min(t0, yticks[0]); t1 = Math.max(t1, yticks[yticks.length - 1]); }
    const label = (v) => (log ? (v < -2 || v > 4 ? '1e' + v : fmt(Math.pow(10, v))) : fmt(v));  // a decade: 0.01, 1e-4
    const L = 14 + 6.2 * Math.max(...yticks.map((v) => label(v).length));
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => T + (1 - (f(y) - t0) / (t1 - t0)) * (H - T - B);
    const Yt = (t) => T + (1 - (t - t0) / (t1 - t0)) * (H - T - B);
    for (const t of yticks) {
      svg.append(sv('line', { class: 'grid', x1: L, x2: W - R, y1: Yt(t), y2: Yt(t) }));
      svg.append(sv('text', { x: L - 4, y: Yt(t) + 3, 'text-anchor': 'end' }, label(t)));
    }
    svg.append(sv('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    for (const xv of niceTicks(x0, x1, 5)) svg.append(sv('text', { x: X(xv), y: H - B + 13, 'text-anchor': 'middle' }, String(xv)));
    svg.append(sv('text', { x: W - R, y: H - 3, 'text-anchor': 'end' }, xKey || 'row'));
    svg.append(sv('text', { class: 'ttl', x: 4, y: 14 }, title + (log ? ' (log scale)' : '')));
    keys.forEach((k, ki) => {
      let d = '', pts = 0;
      rows.forEach((r, i) => { if (ok(r[k])) { d += (d ? 'L' : 'M') + X(xs[i]).toFixed(1) + ',' + Y(r[k]).toFixed(1); pts++; } });
      const colour = PALETTE[ki % PALETTE.length];
      const path = sv('path', { d, stroke: colour, 'data-key': k });
      path.append(sv('title', null, k));
      svg.append(path);
      if (pts <= 20) rows.forEach((r, i) => { if (ok(r[k])) svg.append(sv('circle', { cx: X(xs[i]), cy: Y(r[k]), r: 2.5, fill: colour })); });
      const lx = W - R - 110 * (keys.length - ki);
      svg.append(sv('rect', { x: lx, y: 6, width: 12, height: 4, fill: colour }));
      svg.append(sv('text', { x: lx + 16, y: 12 }, k));
    });
    if (marker !== null && marker >= x0 && marker <= x1) svg.append(sv('line', { class: 'marker', x1: X(marker), x2: X(marker), y1: T, y2: H - B }));
    svg.setAttribute('aria-label', title + ' over ' + (xKey || 'rows') + ' (' + rows.length + ' points): ' + keys.map((k) => {
      const last = rows.filter((r) => ok(r[k])).pop();
      return k + (last ? ' ends at ' + fmt(last[k]) : '');
    }).join(', '));
    return svg;
  }

  // ------------------------------------------------------------------ side by side: A | B | A − B
  /* The article's figures 13 and 14 (embeddings at epoch 0 and 5000) in one view, for any tensor. A and B share
     one colour scale; "lock" keeps it fixed while A or B moves (so colours compare across epochs too). */
  let diffMapper = null, diffM = null, sbsA = null, sbsB = null, sbsMapA = null, sbsMapB = null, lockedScale = null;
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
    if (!meta) { $('diff-title').textContent = 'open a tensor first'; return; }
    if (wiActive() && meta.kind === 'activation') {
      $('diff-title').textContent = meta.label + ' · ' + name;
      $('diff-stats').textContent = 'two epochs side by side compare the recorded samples: the what-if input is run at one epoch ' +
        '(the slider). Go back to the recorded samples, or open a weight.';
      return;
    }
    const who = meta.kind === 'weight' ? '' : ' · sample ' + sampleInfo().index;
    $('diff-title').textContent = meta.label + ' · ' + name + who;
    $('sbs-a-cap').textContent = 'A: ' + snapLabel(S.diffA);
    $('sbs-b-cap').textContent = 'B: ' + snapLabel(S.diffB);
    const rows = rowsWindow(meta, S.rowStart);
    try {
      const [a, b] = await Promise.all([getTensor(S.diffA, name, S.sample, rows), getTensor(S.diffB, name, S.sample, rows)]);
      if (!isCurrent('diff', g)) return;
      const off = rows ? rows[0] : 0;
      const Ma = matrixOf(a, meta.dims, S.slice, sampleInfo(), S.showPad, off), Mb = matrixOf(b, meta.dims, S.slice, sampleInfo(), S.showPad, off);
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
      sbsMapA = drawHeatmap($('sbs-a-canvas'), Ma, shared, { maxW: w, maxH: 520, alt: 'A, ' + meta.label + ' at ' + snapLabel(S.diffA) });
      sbsMapB = drawHeatmap($('sbs-b-canvas'), Mb, shared, { maxW: w, maxH: 520, alt: 'B, ' + meta.label + ' at ' + snapLabel(S.diffB) });
      const M = Object.assign({}, Ma, { data: d });
      diffM = M;
      const sc = scaleFor(d, true);
      diffMapper = drawHeatmap($('diff-canvas'), M, sc, { maxW: w, maxH: 520, alt: 'A − B, ' + meta.label });
      colorbar($('sbs-colorbar'), shared);
      $('sbs-colorbar').prepend(el('span', null, 'A and B' + (S.diffLock ? ' (locked)' : '') + ':'));
      colorbar($('diff-colorbar'), sc);
      $('diff-colorbar').prepend(el('span', null, 'A − B:'));
      $('diff-stats').textContent = 'max |A−B| ' + fmt(mx) + ' · mean |A−B| ' + fmt(cnt ? sum / cnt : 0) +
        ' · ‖A−B‖/‖B‖ ' + (nb ? fmt(Math.sqrt(na / nb)) : '—');
      $('diff-canvas').dataset.a = S.diffA; $('diff-canvas').dataset.b = S.diffB; $('diff-canvas').dataset.name = name;
    } catch (e) {
      if (isCurrent('diff', g)) $('diff-stats').textContent = String(e.message || e);
    }
  }

  // ------------------------------------------------------------------ attribution
  /* Recorded with each snapshot (manifest: snapshots[k].attributions[sample] = one entry per target):
     integrated gradients per token and layer conductance per layer × token, by the model at that snapshot. */
  let attrLayersMapper = null, attrLayersM = null, attrEpochsMapper = null, attrEpochsM = null;
  function attrEntries(snap) {
    const s = S.man.snapshots[snap];
    return s && s.attributions ? (s.attributions[S.sample] || []) : [];
  }
  const hasAttributions = () => S.man.snapshots.some((s) => Array.isArray(s.attributions));
  /* Colour scales of attributions: symmetric, and never finer than ATTR_FLOOR (0.001 of probability), so that
     the noise of a target the baseline already gets stays white. */
  const ATTR_FLOOR = 0.001;
  function attrScale(data) {
    const sc = scaleFor(data, true);
    const m = Math.max(sc.vmax, ATTR_FLOOR);
    return Object.assign(sc, { vmin: -m, vmax: m, clipped: false });
  }
  /* Each layer's row divided by its own largest |value| (a pooler's last layer puts it all on [CLS], which
     would leave the other layers white on a shared scale); the hover still shows the real value. */
  function perLayer(M) {
    const colours = new Float32Array(M.data.length);
    for (let r = 0; r < M.rows; r++) {
      let m = ATTR_FLOOR;
      for (let c = 0; c < M.cols; c++) m = Math.max(m, Math.abs(M.data[r * M.cols + c]));
      for (let c = 0; c < M.cols; c++) colours[r * M.cols + c] = M.data[r * M.cols + c] / m;
    }
    return colours;
  }
  function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.005 ? 2 : 1) + '%'; }

  function renderAttribution() {
    const card = $('attribution-view');
    card.hidden = !hasAttributions() || wiActive();  // recorded with the recorded samples only
    if (card.hidden) return;
    const about = S.man.attribution || {};
    $('attr-about').textContent = about.f ? 'f = ' + about.f + ' · baseline: ' + about.baseline : '';
    $('attr-sub').textContent = snapLabel(S.snap);
    const entries = attrEntries(S.snap);
    const sel = $('attr-target');
    const names = entries.map((e) => e.target + (e.error ? '' : e.gold ? ' (true)' : ' (predicted)'));
    if (sel.dataset.names !== names.join('|')) {
      sel.innerHTML = '';
      names.forEach((n, i) => sel.append(el('option', { value: i }, n)));
      sel.dataset.names = names.join('|');
    }
    S.attrTarget = Math.min(S.attrTarget, Math.max(0, entries.length - 1));
    sel.value = String(S.attrTarget);
    const e = entries[S.attrTarget];
    const box = $('attr-tokens'), stats = $('attr-stats');
    box.innerHTML = ''; stats.innerHTML = '';
    const info = sampleInfo(), tokens = info.tokens.slice(0, info.length);
    if (!e || e.error) {
      stats.textContent = e ? e.error : 'no attributions were recorded for this snapshot';
      clearCanvas('attr-layers'); renderAttrEpochs(tokens);
      return;
    }
    const ig = Float32Array.from(e.ig), sc = attrScale(ig);
    tokens.forEach((t, i) => {
      const c = colorFor(ig[i], sc), lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
      const span = el('span', { class: 'tok attr' + (i === e.position ? ' target' : ''),
        title: 'position ' + i + ' · ' + t + ' · attribution ' + fmt(ig[i]), 'data-value': String(ig[i]) }, t);
      span.style.background = 'rgb(' + c.map(Math.round).join(',') + ')';
      span.style.color = lum > 150 ? '#1d2330' : '#ffffff';
      box.append(span);
    });
    let sum = 0;
    for (const v of ig) sum += v;
    const parts = ['p(' + e['class'] + ') ' + pct(e.probability) + ' · baseline ' + pct(e.baseline_probability) +
      ' · difference ' + fmt(e.probability - e.baseline_probability),
      'predicted ' + e.prediction + ' (' + pct(e.predicted_probability) + ')',
      'IG sum ' + fmt(sum) + ', delta ' + fmt(e.ig_delta) + ' after ' + e.ig_steps + ' steps'];
    if (e.layers) parts.push('conductance delta ' + fmt(e.layers_delta) + ' after ' + e.layers_steps + ' steps');
    stats.textContent = parts.join(' · ');
    if (e.ig_converged === false || e.layers_converged === false) {
      stats.append(el('span', { class: 'warn' }, ' · |delta| above the tolerance ' + fmt(e.tolerance) +
        ' (5% of the difference): read these as approximate'));
    }
    if (e.layers) {
      const L = e.layers.length, T = tokens.length, data = new Float32Array(L * T);
      for (let r = 0; r < L; r++) for (let c = 0; c < T; c++) data[r * T + c] = e.layers[L - 1 - r][c];  // last layer on top
      attrLayersM = { rows: L, cols: T, data, rowLabels: Array.from({ length: L }, (_, r) => 'layer ' + (L - r)),
        colLabels: tokens, rowName: 'layer', colName: 'token' };
      const own = $('attr-per-layer').checked;
      const shown = own ? Object.assign({}, attrLayersM, { data: perLayer(attrLayersM) }) : attrLayersM;
      const lsc = own ? { diverging: true, vmin: -1, vmax: 1 } : attrScale(data);
      attrLayersMapper = drawHeatmap($('attr-layers-canvas'), shown, lsc, { maxW: Math.max(320, card.clientWidth / 2 - 40),
        maxH: 420, noValues: own });
      colorbar($('attr-layers-colorbar'), lsc);
      if (own) $('attr-layers-colorbar').append(el('span', null, '× each layer\'s largest |value| (hover for the values)'));
      $('attr-layers-hover').textContent = '';
    } else {
      clearCanvas('attr-layers', e.layers_error || 'layer conductance was not recorded (explain=ig)');
    }
    renderAttrEpochs(tokens);
  }

  function clearCanvas(prefix, message) {
    const c = $(prefix + '-canvas');
    c.width = 0; c.height = 0; c.style.width = '0px'; c.style.height = '0px';
    $(prefix + '-colorbar').innerHTML = '';
    $(prefix + '-hover').textContent = message || '';
    if (prefix === 'attr-layers') { attrLayersMapper = null; } else { attrEpochsMapper = null; }
  }

  function renderAttrEpochs(tokens) {
    const snaps = S.man.snapshots, T = tokens.length, data = new Float32Array(snaps.length * T).fill(NaN);
    const rowLabels = [];
    snaps.forEach((_, k) => {
      const e = attrEntries(k)[S.attrTarget];
      const mark = k === S.snap ? '▶ ' : '';
      rowLabels.push(mark + snapShort(k) + (e && !e.error ? ' · ' + e['class'] : ''));
      if (e && e.ig) for (let c = 0; c < T; c++) data[k * T + c] = e.ig[c];
    });
    attrEpochsM = { rows: snaps.length, cols: T, data, rowLabels, colLabels: tokens, rowName: 'snapshot', colName: 'token' };
    const sc = attrScale(data);
    attrEpochsMapper = drawHeatmap($('attr-epochs-canvas'), attrEpochsM, sc,
      { maxW: Math.max(320, $('attribution-view').clientWidth / 2 - 40), maxH: 420 });
    colorbar($('attr-epochs-colorbar'), sc);
  }

  // ------------------------------------------------------------------ snapshot / sample / play
  /* The slider moves in epochs (in steps when several snapshots share an epoch): its ticks are round epochs,
     a drag lands on the nearest recorded snapshot, the arrow keys step from snapshot to snapshot. */
  const snapX = (i) => S.man.snapshots[i][S.xKey];
  function nearestSnap(x) {
    let best = 0;
    S.man.snapshots.forEach((s, i) => { if (Math.abs(s[S.xKey] - x) < Math.abs(snapX(best) - x)) best = i; });
    return best;
  }
  function niceTicks(x0, x1, count) {
    const span = Math.max(1e-9, x1 - x0), raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(x0 / step) * step; v <= x1 + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
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
    renderPredictions();
    renderCurves();
    renderMatrix();
    renderAttention();
    renderAttribution();
    renderDiff();
    renderProjector();
    saveState();
    if (S.whatif && S.whatif.snap !== S.snap) askWhatIf();
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
    if (S.showPad) q.set('pad', '1');
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
    S.stretch = q.get('stretch') === '1'; S.showPad = q.get('pad') === '1';
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
    if (wiActive()) { S.wiShow = false; $('whatif-show').checked = false; renderWhatIf(); }
    $('sample-select').value = String(i);
    renderInput();
    renderPredictions();
    renderMatrix();
    renderAttention();
    renderAttribution();
    renderDiff();
    saveState();
  }

  // ------------------------------------------------------------------ live what-if
  /* The server runs the model on the typed input, with the clicked words masked, at the slider's snapshot (the
     weights it recorded; the saved model at the last one), and records it with the recorder's own code: the
     answer's manifest holds the tokens and predictions, its tensors come from api/tensor?whatif=ID. */
  function whatIfNeedsServer() {
    if (S.embedded) return 'What-if needs the server: this exported file holds only the recorded tensors. ' +
      'Run `glassbert explore RUN` (or `glassbert explore MODEL --text …`) and open the page it prints.';
    const w = S.man.whatif;
    return w && !w.available ? 'What-if is off: ' + w.reason : '';
  }
  let wiGen = 0;
  async function askWhatIf() {
    const text = $('whatif-text').value, pair = $('whatif-pair').value.trim();
    if (!text.trim()) { $('whatif-status').textContent = 'type a sentence first'; return; }
    const asked = text + '\u0000' + pair;
    if (S.wiAsked !== asked) S.wiMask = [];  // another text: its tokens (and positions) are new
    S.wiAsked = asked;
    const g = ++wiGen, snap = S.snap;
    $('whatif-status').textContent = 'running the model at ' + snapLabel(snap) + '…';
    let r, body;
    try {
      r = await fetch('api/whatif', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ text, pair: pair || null, mask: S.wiMask, snap }) });
      body = await r.json();
    } catch (e) {
      if (g === wiGen) $('whatif-status').textContent = 'the server did not answer: ' + (e.message || e);
      return;
    }
    if (g !== wiGen) return;  // a newer question is on its way
    if (!r.ok) { $('whatif-status').textContent = body.message || (r.status + ' ' + r.statusText); return; }
    S.whatif = { id: body.id, man: body.manifest, snap, weights: body.weights };
    S.wiShow = $('whatif-show').checked;
    renderWhatIf();
    if (S.wiShow) renderWhatIfViews();
  }
  function renderWhatIfViews() {
    renderInput(); renderArch(); renderMatrix(); renderAttention(); renderAttribution(); renderDiff(); renderProjector();
  }
  function renderWhatIf() {
    const w = S.whatif;
    $('whatif-clear').hidden = !wiActive();
    $('whatif-tokens-row').hidden = !w;
    const tbl = $('whatif-table');
    tbl.innerHTML = '';
    if (!w) return;
    const info = w.man.samples[0], pred = (w.man.snapshots[0].predictions || [])[0] || {};
    $('whatif-status').textContent = 'answered by ' + w.weights + (S.wiShow ? ' · every view shows this input' : '');
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
    const tips = S.man.whatif || {};
    if (tips.max_tokens) $('whatif-sub').textContent += ' · at most ' + tips.max_tokens + ' tokens';
    $('whatif-form').addEventListener('submit', (e) => { e.preventDefault(); askWhatIf(); });
    $('whatif-show').onchange = () => {
      S.wiShow = $('whatif-show').checked;
      renderWhatIf(); renderWhatIfViews();
    };
    $('whatif-clear').onclick = () => { $('whatif-show').checked = false; $('whatif-show').onchange(); };
  }

  // ------------------------------------------------------------------ embedding projector
  /* The token-embedding table (the rows of the tokens this run uses) or one layer's contextual vectors (every real
     token of every recorded sample, or of the what-if input) in 2-D by PCA, computed here from the recorded
     tensors (so it works in an exported file too). The axes are the last snapshot's principal components unless
     "axes of this epoch" is checked: then the points of two epochs are in two frames. */
  function projSources() {
    const out = [];
    const table = Object.keys(S.man.tensors).find((n) => S.man.tensors[n].label === 'token embedding table');
    if (table) out.push({ key: 'table', name: table, label: 'token embedding table (' + table + ')' });
    const start = byRole('start');
    if (start && tensorMeta(start)) out.push({ key: 'ctx:' + start, name: start, label: 'embeddings (after LayerNorm), per token' });
    for (let l = 0; l < cfg('num_hidden_layers', 1); l++) {
      const e = catalogue().filter((x) => x.layer === l && /(^|\.)output\.layernorm$/.test(x.name) && !/attention\.output/.test(x.name)).pop();
      if (e && tensorMeta(e.name)) out.push({ key: 'ctx:' + e.name, name: e.name, label: 'layer ' + (l + 1) + ' output, per token' });
    }
    return out;
  }
  function tableIds() {
    const v = S.man.vocab;
    const ids = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v).map(Number).sort((a, b) => a - b);
    return ids.filter((i) => !/^\[(PAD|unused\d*)\]$/.test(vocabToken(i)));
  }
  /* {labels, X (n × d, Float64Array rows), d} of the chosen vectors at snapshot ``snap``. */
  async function projVectors(src, snap) {
    if (src.key === 'table') {
      const meta = S.man.tensors[src.name], ids = tableIds(), d = meta.shape[1];
      const big = meta.shape[0] * d > MAX_CELLS;
      const rows = big ? await Promise.all(ids.map((i) => getTensor(snap, src.name, 0, [i, i + 1])))
        : [await getTensor(snap, src.name, 0)];
      const X = ids.map((id, k) => big ? Float64Array.from(rows[k].data) : Float64Array.from(rows[0].data.subarray(id * d, (id + 1) * d)));
      return { labels: ids.map(vocabToken), X, d };
    }
    const infos = wiActive() ? [[sampleInfo(), 0]] : S.man.samples.map((s, i) => [s, i]);
    const ts = await Promise.all(infos.map(([, i]) => getTensor(snap, src.name, i)));
    const labels = [], X = [];
    let d = 0;
    ts.forEach((t, k) => {
      const [info] = infos[k]; d = t.shape[1];
      for (let r = 0; r < info.length; r++) {
        labels.push(info.tokens[r] + (infos.length > 1 ? ' ·' + info.index : ''));
        X.push(Float64Array.from(t.data.subarray(r * d, (r + 1) * d)));
      }
    });
    return { labels, X, d };
  }
  /* The top two principal axes of the rows of X (power iteration on the covariance, with deflation). */
  function pca2(X, d) {
    const n = X.length, mean = new Float64Array(d);
    for (const x of X) for (let j = 0; j < d; j++) mean[j] += x[j] / n;
    const C = new Float64Array(d * d);
    for (const x of X) for (let i = 0; i < d; i++) { const xi = x[i] - mean[i]; for (let j = 0; j < d; j++) C[i * d + j] += xi * (x[j] - mean[j]) / n; }
    const axes = [];
    for (let k = 0; k < 2; k++) {
      let v = new Float64Array(d).map((_, i) => 1 / Math.sqrt(d) + 1e-3 * ((i * 7919) % 13));
      for (let it = 0; it < 200; it++) {
        const w = new Float64Array(d);
        for (let i = 0; i < d; i++) { let s = 0; for (let j = 0; j < d; j++) s += C[i * d + j] * v[j]; w[i] = s; }
        for (const a of axes) { let dot = 0; for (let i = 0; i < d; i++) dot += w[i] * a[i]; for (let i = 0; i < d; i++) w[i] -= dot * a[i]; }
        const norm = Math.hypot(...w) || 1;
        v = w.map((x) => x / norm);
      }
      axes.push(v);
    }
    let total = 0;
    for (let i = 0; i < d; i++) total += C[i * d + i];
    const explained = axes.map((a) => { let s = 0; for (let i = 0; i < d; i++) { let r = 0; for (let j = 0; j < d; j++) r += C[i * d + j] * a[j]; s += a[i] * r; } return total ? s / total : 0; });
    return { mean, axes, explained };
  }
  const projCache = new Map();
  let projData = null;
  async function renderProjector() {
    const card = $('projector-view'), sel = $('proj-source');
    const sources = projSources();
    card.hidden = !sources.length;
    if (card.hidden) return;
    if (sel.dataset.keys !== sources.map((x) => x.key).join('|')) {
      const keep = sel.value;
      sel.innerHTML = '';
      for (const x of sources) sel.append(el('option', { value: x.key }, x.label));
      sel.dataset.keys = sources.map((x) => x.key).join('|');
      if (sources.some((x) => x.key === keep)) sel.value = keep;
    }
    const src = sources.find((x) => x.key === sel.value) || sources[0];
    const g = nextGen('projector');
    try {
      const now = await projVectors(src, S.snap);
      const last = S.man.snapshots.length - 1, own = $('proj-own-axes').checked || src.key !== 'table' && wiActive();
      const frameKey = [src.key, own ? S.snap : last, wiActive() ? S.whatif.id : 's'].join('|');
      if (!projCache.has(frameKey)) projCache.set(frameKey, pca2(own ? now.X : (await projVectors(src, last)).X, now.d));
      if (!isCurrent('projector', g)) return;
      drawProjection(src, now, projCache.get(frameKey), own);
    } catch (e) {
      if (isCurrent('projector', g)) $('proj-stats').textContent = String(e.message || e);
    }
  }
  function drawProjection(src, V, P, own) {
    const pts = V.X.map((x) => P.axes.map((a) => { let s = 0; for (let j = 0; j < V.d; j++) s += (x[j] - P.mean[j]) * a[j]; return s; }));
    projData = { V, pts };
    const W = 560, H = 420, m = 24;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of pts) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const sx = (x) => m + (x - x0) / ((x1 - x0) || 1) * (W - 2 * m - 60), sy = (y) => H - m - (y - y0) / ((y1 - y0) || 1) * (H - 2 * m);
    const svg = $('proj-svg');
    svg.innerHTML = '';
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.setAttribute('width', W); svg.setAttribute('height', H);
    const tokSel = $('proj-token');
    if (tokSel.dataset.labels !== V.labels.join('|')) {
      tokSel.innerHTML = '';
      V.labels.forEach((t, i) => tokSel.append(el('option', { value: i }, t)));
      tokSel.dataset.labels = V.labels.join('|');
      const plain = (t) => !/^\[.*\]( ·\d+)?$/.test(t);  // not [UNK] or "[CLS] ·0"
      const first = (ok) => V.labels.findIndex((t) => plain(t) && ok(t));
      const word = [(t) => /\p{L}/u.test(t) && !t.startsWith('##'), (t) => /\p{L}/u.test(t), () => true]  // a word, not "." or "##a"
        .map(first).find((i) => i >= 0);
      tokSel.value = String(word === undefined ? 0 : word);
    }
    const chosen = Math.min(Number(tokSel.value) || 0, V.labels.length - 1);
    pts.forEach(([x, y], i) => {
      const c = sv('circle', { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 4, fill: /^\[.*\]/.test(V.labels[i]) ? '#9aa3b8' : '#3457d5',
        class: i === chosen ? 'sel' : '', 'data-i': i, 'data-x': x, 'data-y': y });
      c.append(sv('title', null, V.labels[i] + ' (' + fmt(x) + ', ' + fmt(y) + ')'));
      c.addEventListener('click', () => { tokSel.value = String(i); drawProjection(src, V, P, own); });
      svg.append(c);
      svg.append(sv('text', { x: (sx(x) + 6).toFixed(1), y: (sy(y) + 4).toFixed(1) }, V.labels[i]));
    });
    const where = src.label + ' · ' + (src.key === 'table' ? '' : sampleName() + ' · ') + snapLabel(S.snap);
    svg.setAttribute('aria-label', 'embedding projector, ' + where + ': ' + pts.length + ' points on PC1 × PC2');
    $('proj-stats').textContent = pts.length + ' points · PC1 ' + (100 * P.explained[0]).toFixed(0) + '% and PC2 ' +
      (100 * P.explained[1]).toFixed(0) + '% of the variance ' + (own ? 'at this epoch' : 'at the last snapshot') + ' · ' + snapLabel(S.snap);
    // nearest neighbours by cosine in the full space (not the 2-D picture)
    const q = V.X[chosen], nq = Math.hypot(...q) || 1;
    const sims = V.X.map((x, i) => { let s = 0; for (let j = 0; j < V.d; j++) s += q[j] * x[j]; return [s / nq / (Math.hypot(...x) || 1), i]; })
      .filter((p) => p[1] !== chosen).sort((a, b) => b[0] - a[0]).slice(0, 8);
    const nn = $('proj-nn');
    nn.innerHTML = '';
    for (const [c, i] of sims) nn.append(el('li', { 'data-i': i, 'data-cos': String(c) }, V.labels[i] + '  cos ' + c.toFixed(3)));
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

  // ------------------------------------------------------------------ the article's walk-through
  /* "Exploring BERT" (Muneeb S. Ahmad), section by section: each step opens its view on this run. */
  const findTensor = (suffix) => Object.keys(S.man.tensors).find((n) => n === suffix || n.endsWith('.' + suffix)) || null;
  const TOUR = [
    { title: 'Configuration', panel: 'config-panel', text: 'Figure 4: the model\'s sizes. The article\'s toy has 2 encoder layers, hidden size 7, 5 heads of size 4 (Q, K and V are 20 wide), a feed-forward width of 28 and 14 tokens per sample.' },
    { title: 'Input', panel: 'input-panel', text: 'Figures 5–11: the sentence pair, masked and padded to 14 tokens, its input ids, segment ids and masked positions. Sample 0 masks "cat" and "chase" as in figure 6.' },
    { title: 'Input embedding', tensor: 'embeddings.sum', panel: 'matrix-view', text: 'Figure 12: token + position + segment embeddings, summed ([tokens, hidden]). Move the epoch slider: these are the vectors of figures 13 and 14.' },
    { title: 'Q, K and V', tensor: 'layer.0.attention.self.query', panel: 'matrix-view', text: 'W_Q, W_K and W_V turn the embeddings into queries, keys and values, split into heads (20 → 5 × 4 in the toy).' },
    { title: 'Attention per head', panel: 'attention-view', head: 2, text: 'softmax(QKᵀ/√d + mask), one grid per head: rows are queries, columns keys; colours on the fixed 0–1 scale. The article points at head h2 of sample 0 ("cat" ↔ "chase") late in training.' },
    { title: 'Add & norm', tensor: 'layer.0.attention.output.layernorm', panel: 'matrix-view', text: 'The heads\' context, projected back to the hidden size, added to the layer\'s input (the residual) and layer-normalised.' },
    { title: 'Feed-forward', tensor: 'layer.0.intermediate.activation', panel: 'matrix-view', text: 'W_1, GELU, W_2: each token on its own through a wider layer (28 in the toy), then add & norm again.' },
    { title: 'MLM logits', tensor: 'cls.predictions.logits', panel: 'matrix-view', text: 'Figure 16: the masked rows (h_masked) through a dense layer, GELU, LayerNorm and the decoder: one score per vocabulary word; its argmax is the prediction.' },
    { title: 'IsNext', tensor: 'cls.seq_relationship.logits', panel: 'predictions-panel', text: 'The [CLS] row through the pooler (tanh) and a 2-way layer. Convention: here class 0 is IsNext and "True" means the second sentence follows the first; the article reads its IsNext column the other way (False = connected).' },
    { title: 'Two epochs side by side', tensor: 'embeddings.sum', panel: 'diff-view', compare: true, text: 'Figures 13 and 14 in one view: the embeddings at the first snapshot (B) and now (A), on one colour scale, and their difference.' },
  ];
  let tourAt = -1;
  function tourSteps() {
    return TOUR.filter((t) => (!t.tensor || findTensor(t.tensor)) && !$(t.panel).hidden);
  }
  function showTour(i) {
    const steps = tourSteps();
    document.querySelectorAll('.tour-on').forEach((e) => e.classList.remove('tour-on'));
    if (i < 0 || i >= steps.length) { $('tour-box').hidden = true; tourAt = -1; delete document.body.dataset.tour; return; }
    tourAt = i;
    const t = steps[i], panel = $(t.panel);
    if (t.panel === 'config-panel' || t.panel === 'input-panel') (panel.tagName === 'DETAILS' ? panel : $('input-details')).open = true;
    if (t.tensor) openTensor(findTensor(t.tensor), false);
    if (t.head !== undefined && t.head < cfg('num_attention_heads', 1)) { S.head = t.head; renderAttention(); }
    if (t.compare) { S.diffB = 0; renderDiff(); }
    panel.classList.add('tour-on');
    panel.scrollIntoView({ block: 'start' });
    $('tour-step').textContent = (i + 1) + ' / ' + steps.length;
    $('tour-title').textContent = t.title;
    $('tour-text').textContent = t.text;
    $('tour-prev').disabled = i === 0;
    $('tour-next').textContent = i === steps.length - 1 ? 'finish' : 'next ▶';
    $('tour-box').hidden = false;
    document.body.dataset.tour = t.panel;
  }
  function setupTour() {
    $('tour-button').onclick = () => showTour(0);
    $('tour-next').onclick = () => showTour(tourAt + 1);
    $('tour-prev').onclick = () => showTour(tourAt - 1);
    $('tour-close').onclick = () => showTour(-1);
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
    $('diff-a').addEventListener('input', () => { S.diffFollow = false; $('diff-follow').checked = false; S.diffA = Number($('diff-a').value); renderDiff(); });
    $('diff-b').addEventListener('input', () => { S.diffB = Number($('diff-b').value); renderDiff(); saveState(); });
    $('diff-follow').onchange = () => { S.diffFollow = $('diff-follow').checked; renderDiff(); };
    $('diff-lock').onchange = () => { S.diffLock = $('diff-lock').checked; renderDiff(); };
    $('send-to-diff').onclick = () => { $('diff-view').scrollIntoView({ behavior: 'smooth' }); };
    $('attn-stretch').onchange = () => { S.stretch = $('attn-stretch').checked; renderAttention(); saveState(); };
    $('matrix-pad').onchange = () => { $('show-pad').checked = $('matrix-pad').checked; $('show-pad').onchange(); };
    $('curves-log').onchange = renderCurves;
    $('neuron-details').addEventListener('toggle', renderNeuron);
    $('neuron-query').onchange = () => { S.neuronQuery = Number($('neuron-query').value); renderNeuron(); };
    const names = $('tensor-names');
    for (const [n, m] of Object.entries(man.tensors)) names.append(el('option', { value: n }, m.label + ' · [' + m.shape.join(', ') + ']'));
    $('tensor-find').addEventListener('change', () => {
      const q = $('tensor-find').value.trim();
      const hit = tensorMeta(q) ? q : Object.keys(man.tensors).find((n) => n.includes(q) || man.tensors[n].label === q);
      if (hit) openTensor(hit); else $('matrix-stats').textContent = 'no recorded tensor matches ' + JSON.stringify(q);
    });
    $('row-jump').addEventListener('change', () => {
      const meta = tensorMeta(S.tensor), r = meta ? rowFromQuery(meta, $('row-jump').value) : null;
      $('row-jump-note').textContent = r === null ? 'give a row number' + (meta && meta.dims[0] === 'vocab' ? ' or a token of the vocabulary' : '') : '';
      if (r !== null) { S.rowStart = r; renderMatrix(); renderDiff(); }
    });
    document.querySelectorAll('button.save').forEach((b) => { b.onclick = () => saveView($(b.dataset.save)); });
    $('link-button').onclick = () => {
      saveState();
      if (navigator.clipboard) navigator.clipboard.writeText(location.href).catch(() => {});
      $('link-button').textContent = 'Link copied';
      setTimeout(() => { $('link-button').textContent = 'Link'; }, 1500);
    };
    setupTour();
    setupWhatIf();
    $('proj-source').onchange = renderProjector;
    $('proj-own-axes').onchange = renderProjector;
    $('proj-token').onchange = renderProjector;
    attachHover($('matrix-canvas'), $('matrix-hover'), () => matrixMapper, () => matrixM);
    attachHover($('attention-canvas'), $('attention-hover'), () => attnMapper, () => attnM);
    attachHover($('diff-canvas'), $('diff-hover'), () => diffMapper, () => diffM);
    attachHover($('sbs-a-canvas'), $('sbs-a-hover'), () => sbsMapA, () => sbsA);
    attachHover($('sbs-b-canvas'), $('sbs-b-hover'), () => sbsMapB, () => sbsB);
    attachHover($('neuron-canvas'), $('neuron-hover'), () => neuronMapper, () => neuronM);
    attachHover($('attr-layers-canvas'), $('attr-layers-hover'), () => attrLayersMapper, () => attrLayersM);
    attachHover($('attr-epochs-canvas'), $('attr-epochs-hover'), () => attrEpochsMapper, () => attrEpochsM);
    $('attr-target').onchange = () => { S.attrTarget = Number($('attr-target').value); renderAttribution(); };
    $('attr-per-layer').onchange = renderAttribution;
    // what a recording does not hold is not shown: one snapshot (no slider, no comparison), no heads, no metrics
    if (man.snapshots.length < 2) {
      $('diff-view').hidden = true;
      $('send-to-diff').hidden = true;
      $('play-button').hidden = true;
      $('slider-wrap').hidden = true;
    }
    $('predictions-panel').hidden = !man.snapshots.some((x) => (x.predictions || []).some((p) => p.masked_pred_ids || p.is_next_pred !== undefined || p.label_probs));
    $('curves-panel').hidden = !S.metrics.length;
    renderVocab();
    setupAttentionControls();
    S.tensor = [byRole('start')].concat(catalogue().filter((e) => e.block).map((e) => e.name))
      .find((n) => n && tensorMeta(n)) || Object.keys(man.tensors)[0];
    const first = loadState();
    $('sample-select').value = String(S.sample);
    $('attn-kind').value = S.kind; $('attn-stretch').checked = S.stretch;
    $('show-pad').checked = S.showPad; $('matrix-pad').checked = S.showPad;
    const e = catEntry(S.tensor);
    if (e && e.layer !== null && e.layer !== undefined) S.archLayer = e.layer;
    renderInput();
    renderArch();
    renderTicks();
    S.ready = true;
    selectSnap(first);
    document.body.dataset.ready = '1';
  }

  boot();
})();
