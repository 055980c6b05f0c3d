/* glassbert explorer, the core: vanilla JS, no dependencies, no network beyond this page's own server.
   Data comes from the embedded <script id="glassbert-data"> block (exported file) or from the
   read-only /api of `glassbert explore`. Tensors are fetched lazily, one (snapshot, name, sample)
   at a time, and cached.

   The page is this core (core.js: state, data, helpers and the registry of views; draw.js: colours and
   heatmaps; app.js, loaded last: the controls, the address and boot) and one file per view in views/, each
   calling GB.registerView once. index.html loads them as plain <script>s, the views in the order of the page;
   the export inlines the same list into one file. Everything shared lives on the one global object GB. */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);

  let SVGNS = null;  // taken from the parser: no namespace URL in these files (the export refuses any URL)
  const MAX_CELLS = 600000;                 // a heatmap never draws more cells than this at once

  const S = {
    man: null, metrics: [], embedded: null,
    snap: 0, sample: 0,
    tensor: null, slice: {}, archLayer: 0,
    layer: 0, head: 0, kind: 'attention', showPad: false,
    diffB: 0, diffA: 0, diffFollow: true, diffLock: false, attrTarget: 0, stretch: false, rowStart: 0,
    attnScale: 'fixed',  // attention colours: 'fixed' (0–1) or 'uniform' (relative to 1/n)
    neuronQuery: 0, xKey: 'epoch',
    timer: null,
    whatif: null, wiShow: true, wiMask: [], wiAsked: null,  // the live what-if: its answer, shown or not, masked positions
    wiRefused: null,  // {snap, message}: the what-if was refused at that snapshot (weights not recorded, …)
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
     snapshots). Decoding snapshot k of a delta tensor needs snapshot k−1 of it first; each is decoded once.
     The base64 is read a megabyte of text at a time, the page handed back between slices: MiniLM's
     word-embedding table alone is 62 MB of it, which one atob would hold the page for most of a second. */
  const STEP = 1 << 20;  // characters of base64 per slice (a multiple of 4)
  const rawBits = new Map();
  function embeddedBits(snap, key) {
    const fk = snap + '|' + key;
    if (rawBits.has(fk)) return rawBits.get(fk);
    const e = (S.embedded.tensors[snap] || {})[key];
    if (!e) return Promise.reject(new Error(key + ' is not in this export'));
    const p = (async () => {
      const text = e.b64;  // the JSON's, or its block's (pagemodel's linkBlocks)
      const ds = e.z ? new DecompressionStream('deflate') : null, writer = ds && ds.writable.getWriter();
      const whole = ds ? new Response(ds.readable).arrayBuffer() : null, parts = [];
      for (let i = 0; i < text.length; i += STEP) {
        const u = b64bytes(text.slice(i, i + STEP));
        if (writer) await writer.write(u); else parts.push(u);
        if (text.length > STEP) await new Promise((r) => setTimeout(r, 0));
      }
      let bytes;
      if (writer) { await writer.close(); bytes = new Uint8Array(await whole); }
      else bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
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

  /* ``wi``: a what-if answer whose activations to read (the comparison's at snapshot A or B); default the one
     shown (S.whatif) when the views show the what-if input. */
  function getTensor(snap, name, sample, rows, wi) {
    const meta = tensorMeta(name);
    if (!meta) return Promise.reject(new Error(notRecordedWhy(name)));
    const isAct = meta.kind === 'activation';
    wi = isAct ? wi || (wiActive() ? S.whatif : null) : null;  // the what-if's own recording (one sample, one snapshot)
    const key = [wi ? 'whatif' + wi.id : snap, name, isAct ? sample : '-', rows ? rows.join(':') : ''].join('|');
    if (cache.has(key)) return cache.get(key);
    let p;
    const derived = !wi && S.embedded && (S.man.export_derived || {})[name];
    if (wi && wi.local) {                          // computed in this page (pagemodel.js)
      p = GB.pageModel.tensor(wi.local, name, rows);
    } else if (derived) {
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
    if (!SVGNS) { const d = document.createElement('div'); d.innerHTML = '<svg></svg>'; SVGNS = d.firstChild.namespaceURI; }
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
    if (s && asLoaded()) return 'the model as loaded (not trained here)';
    return s ? 'epoch ' + s.epoch + ' · step ' + s.step : '—';
  }
  /* One snapshot of a model as it was loaded (`glassbert explore minilm --text …`): no epoch, no step. */
  function asLoaded() { return !!S.man.as_loaded && S.man.snapshots.length === 1; }
  /* A snapshot's short name for a row label: its epoch, or its step where several snapshots share an epoch
     (a fine-tuning run recorded every N steps). */
  function snapShort(i) {
    const snaps = S.man.snapshots, s = snaps[i];
    if (s && asLoaded()) return 'as loaded';
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
  /* A sequence classifier's recording (its snapshots' predictions hold label_probs), and its class names. */
  const isClassifier = () => S.man.snapshots.some((x) => (x.predictions || []).some((p) => p.label_probs));
  function labelName(i) { const n = (S.man.config || {}).id2label || {}; return n[i] !== undefined ? n[i] : 'label ' + i; }

  // ------------------------------------------------------------------ the model's catalogue
  // The views are drawn from the model's capture catalogue (manifest.catalogue): each module's table says
  // which of its points are boxes (block), in which group, row and chain, and which weight feeds it.
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
  /* The attention tensor of the chosen layer: probabilities, scaled scores or masked scores (S.kind). */
  function attnName(role) { return byRole(role || S.kind, S.layer); }
  const KIND_LABEL = { attention: 'attention probabilities', attention_scores: 'scaled scores QKᵀ/√d',
    attention_masked: 'masked scores QKᵀ/√d + mask' };

  const CONVENTION = 'Where glassbert differs from "Exploring BERT": here IsNext = True means the second sentence follows the ' +
    'first (class 0 of the NSP head, as in BERT); the article\'s IsNext column reads the other way (False = the pair is connected).';

  /* The rows of a big 2-D table drawn at once (at most MAX_CELLS cells), from row ``start``; null: all of them. */
  function rowsWindow(meta, start) {
    if (meta.shape.length !== 2) return null;
    const [r, c] = meta.shape;
    if (r * c <= MAX_CELLS) return null;
    const n = Math.max(1, Math.floor(MAX_CELLS / c)), a = Math.max(0, Math.min(start || 0, r - n));
    return [a, a + n];
  }

  /* The slider's unit of a snapshot (its epoch, or its step where several snapshots share an epoch). */
  const snapX = (i) => S.man.snapshots[i][S.xKey];
  function niceTicks(x0, x1, count) {
    const span = Math.max(1e-9, x1 - x0), raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(x0 / step) * step; v <= x1 + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  // ------------------------------------------------------------------ the registry of views
  /* Each file in views/ calls GB.registerView({...}) once; index.html lists those files in the order of the page,
     and that list is the registry: adding a view is one file in views/ and one <script> line in index.html.
     A view is
       id       its name (GB.redraw(id) draws it again)
       html     optional: its card's markup, added to <main> before the footer when the file loads
       row      optional: consecutive views with the same row share one <div class="ROW"> (e.g. 'two-col')
       on       the changes it is drawn again on (GB.update(why) passes them to render):
                  'boot'    the first drawing, before the first snapshot is shown
                  'snap'    the epoch slider moved             'sample'  another recorded sample
                  'tensor'  another tensor was opened          'pad'     [PAD] shown or hidden
                  'rows'    the big table's first row moved    'whatif'  the what-if input shown, changed or hidden
                  'whatif-snap'  the what-if must be asked again at this snapshot
                  'whatif-refused'  the what-if was refused at this snapshot (S.wiRefused says why)
                  'whatif-hide'  a recorded sample was chosen: the what-if input is no longer shown
       setup()           once, when the recording is loaded and the address read: its controls and handlers
       render(why, opt)  draw it (opt: what GB.update was given with the change)
     The actions the views share (GB.openTensor, GB.selectSample, GB.saveState, GB.setShowPad) are defined by
     app.js, which loads last: call them as GB.name(...) when the user acts, never copy them at load time. */
  const views = [];
  let lastRow = null;  // {name, box}: the row <div> the last view went into
  function registerView(view) {
    if (views.some((v) => v.id === view.id)) throw new Error('two views are called ' + view.id);
    views.push(view);
    if (!view.html) return;
    const main = document.querySelector('main'), foot = main.querySelector('footer');
    if (!view.row) { lastRow = null; foot.insertAdjacentHTML('beforebegin', view.html); return; }
    if (!lastRow || lastRow.name !== view.row || lastRow.box.nextElementSibling !== foot) {
      const box = document.createElement('div');
      box.className = view.row;
      main.insertBefore(box, foot);
      lastRow = { name: view.row, box };
    }
    lastRow.box.insertAdjacentHTML('beforeend', view.html);
  }
  /* Every view that listens to ``why`` draws itself again, in the order of the page. */
  function update(why, opt) {
    for (const v of views) if (v.render && (v.on || []).includes(why)) v.render(why, opt);
  }
  function redraw(id) {
    const v = views.find((x) => x.id === id);
    if (v && v.render) v.render();
  }

  window.GB = {
    $, S, MAX_CELLS, wiActive, nextGen, isCurrent, prod,
    tensorMeta, getTensor, embeddedTensor, notRecordedWhy,
    el, sv, fmt, short, vocabToken, sampleInfo, sampleName, snapLabel, snapShort, asLoaded, showTip, hideTip, setStatus,
    cfg, pairNames, isClassifier, labelName, catalogue, catEntry, sharedLayers, sharedNote, byRole, attnName, KIND_LABEL, CONVENTION,
    rowsWindow, snapX, niceTicks,
    views, registerView, update, redraw,
  };
})();
