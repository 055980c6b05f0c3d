/* glassbert explorer: BERT's and ALBERT's forward pass in the page, on Float32Array weights read from the
   exported file, emitting every capture point under the name the recording uses (glassbert's model.py,
   albert.py and heads.py capture tables), so the views show a typed input with no server.

   Eval mode (dropout is the identity: its taps equal their input). Sums run in float64 and each tensor is
   stored as float32, as torch stores it; the additive mask is float32's most negative value on [PAD] keys
   (torch.finfo(float32).min, as glassbert adds it); GELU is erf-based for "gelu" (an erf accurate to ~1e-15),
   the tanh approximation for "gelu_new" (ALBERT's default). ALBERT: embeddings of width E, projected E → H
   (embedding_hidden_mapping_in), layer i running the weights of group ⌊i·G/L⌋ (each of its inner layers a run
   ``encoder.layer.r``). Heads: MLM (transform, decoder tied to the word embeddings), NSP / SOP, a sequence
   classifier. */
'use strict';
(function () {
  const F32_MIN = -3.4028234663852886e38;  // torch.finfo(torch.float32).min

  /* erf to double precision: its Maclaurin series below 2.5, the continued fraction of erfc above. */
  function erf(x) {
    const a = Math.abs(x);
    if (a < 2.5) {
      let term = x, sum = x;
      const x2 = x * x;
      for (let n = 1; n < 100; n++) {
        term *= -x2 / n;
        const add = term / (2 * n + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
      }
      return sum * 1.1283791670955126;  // 2/√π
    }
    if (a > 6) return x > 0 ? 1 : -1;
    // erfc(a) = exp(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated from the tail
    let f = a;
    for (let k = 60; k >= 1; k--) f = a + (k / 2) / f;
    const erfc = Math.exp(-a * a) / 1.7724538509055159 / f;
    return x > 0 ? 1 - erfc : erfc - 1;
  }
  const C_TANH = Math.sqrt(2 / Math.PI);
  const ACT = {
    gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    gelu_new: (x) => 0.5 * x * (1 + Math.tanh(C_TANH * (x + 0.044715 * x * x * x))),
    gelu_pytorch_tanh: (x) => 0.5 * x * (1 + Math.tanh(C_TANH * (x + 0.044715 * x * x * x))),
    relu: (x) => (x > 0 ? x : 0),
    silu: (x) => x / (1 + Math.exp(-x)),
    tanh: Math.tanh,
  };

  // ------------------------------------------------------------------ the operations, row-major
  /* x (n × k) · Wᵀ (W: m × k, as torch's Linear stores it) + b → n × m. */
  function linear(x, n, k, W, b, m) {
    const out = new Float32Array(n * m);
    for (let i = 0; i < n; i++) {
      const xo = i * k;
      for (let j = 0; j < m; j++) {
        const wo = j * k;
        let s = b ? b[j] : 0;
        for (let t = 0; t < k; t++) s += x[xo + t] * W[wo + t];
        out[i * m + j] = s;
      }
    }
    return out;
  }
  function layerNorm(x, n, d, w, b, eps) {
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      let mean = 0, v = 0;
      for (let t = 0; t < d; t++) mean += x[i * d + t];
      mean /= d;
      for (let t = 0; t < d; t++) { const c = x[i * d + t] - mean; v += c * c; }
      const inv = 1 / Math.sqrt(v / d + eps);
      for (let t = 0; t < d; t++) out[i * d + t] = (x[i * d + t] - mean) * inv * w[t] + b[t];
    }
    return out;
  }
  const map = (x, f) => { const o = new Float32Array(x.length); for (let i = 0; i < x.length; i++) o[i] = f(x[i]); return o; };
  const add = (a, b) => { const o = new Float32Array(a.length); for (let i = 0; i < a.length; i++) o[i] = a[i] + b[i]; return o; };
  function softmaxRows(x, n, d) {
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      let mx = -Infinity, s = 0;
      for (let t = 0; t < d; t++) mx = Math.max(mx, x[i * d + t]);
      const e = new Float64Array(d);
      for (let t = 0; t < d; t++) { e[t] = Math.exp(x[i * d + t] - mx); s += e[t]; }
      for (let t = 0; t < d; t++) out[i * d + t] = e[t] / s;
    }
    return out;
  }
  /* (T, h·d) → (h, T, d) and back. */
  function splitHeads(x, T, h, d) {
    const o = new Float32Array(T * h * d);
    for (let t = 0; t < T; t++) for (let j = 0; j < h; j++) for (let k = 0; k < d; k++) o[(j * T + t) * d + k] = x[t * h * d + j * d + k];
    return o;
  }
  function mergeHeads(x, T, h, d) {  // (h, T, d) → (T, h, d), the same bytes as (T, h·d)
    const o = new Float32Array(T * h * d);
    for (let j = 0; j < h; j++) for (let t = 0; t < T; t++) for (let k = 0; k < d; k++) o[t * h * d + j * d + k] = x[(j * T + t) * d + k];
    return o;
  }
  function transposeLast(x, h, a, b) {  // (h, a, b) → (h, b, a)
    const o = new Float32Array(h * a * b);
    for (let j = 0; j < h; j++) for (let i = 0; i < a; i++) for (let k = 0; k < b; k++) o[(j * b + k) * a + i] = x[(j * a + i) * b + k];
    return o;
  }

  // ------------------------------------------------------------------ the model the manifest describes
  /* What the page can run for this recording: {arch, prefix, cfg, heads, needs (every weight read)}, or
     {error} saying why not. */
  function describe(man) {
    const cfg = man.config || {}, cls = man.model || '';
    const albert = cfg.model_type === 'albert' || /^Albert/.test(cls);
    const p = man.prefix || '';
    if (!cfg.hidden_size || !cfg.num_hidden_layers || !cfg.num_attention_heads) return { error: 'the recording holds no model configuration' };
    if (!ACT[cfg.hidden_act || 'gelu']) return { error: 'activation ' + cfg.hidden_act + ' is not written in this page' };
    if ((cfg.position_embedding_type || 'absolute') !== 'absolute') return { error: 'only absolute position embeddings run in this page' };
    const known = /^(Bert|Albert)(ForPreTraining|ForMaskedLM|ForNextSentencePrediction|ForSequenceClassification|Model)$/;
    if (!known.test(cls)) return { error: cls + ' is not written in this page (it runs BERT and ALBERT with their pretraining heads or a sentence classifier)' };
    const hs = cfg.attention_head_size || cfg.hidden_size / cfg.num_attention_heads;
    const m = { arch: albert ? 'albert' : 'bert', cls, prefix: p, cfg, hs, act: cfg.hidden_act || 'gelu', needs: [] };
    const need = (n) => { m.needs.push(n); return n; };
    for (const t of ['word_embeddings.weight', 'position_embeddings.weight', 'token_type_embeddings.weight', 'LayerNorm.weight', 'LayerNorm.bias']) need(p + 'embeddings.' + t);
    const lin = (base) => [need(base + '.weight'), need(base + '.bias')];
    m.layers = [];
    if (albert) {
      lin(p + 'encoder.embedding_hidden_mapping_in');
      const L = cfg.num_hidden_layers, G = cfg.num_hidden_groups || 1, inner = cfg.inner_group_num || 1;
      for (let i = 0; i < L; i++) {
        const g = Math.floor(i * G / L);
        for (let k = 0; k < inner; k++) {
          const w = p + 'encoder.albert_layer_groups.' + g + '.albert_layers.' + k + '.', at = w + 'attention.';
          const r = m.layers.length, tap = p + 'encoder.layer.' + r + '.';
          for (const n of ['query', 'key', 'value', 'dense', 'LayerNorm', 'ffn', 'ffn_output', 'full_layer_layer_norm']) lin((/^(ffn|full)/.test(n) ? w : at) + n);
          m.layers.push({ q: at + 'query', k: at + 'key', v: at + 'value', o: at + 'dense', ln1: at + 'LayerNorm', f1: w + 'ffn',
            f2: w + 'ffn_output', ln2: w + 'full_layer_layer_norm', self: tap + 'attention.', out: tap + 'attention.', outIn: false,
            ffnIn: null, ffn1: tap + 'ffn', act: tap + 'activation', ffnOutIn: null, ffn2: tap + 'ffn_output', drop2: tap + 'dropout', norm2: tap + 'layernorm' });
        }
      }
    } else {
      for (let i = 0; i < cfg.num_hidden_layers; i++) {
        const w = p + 'encoder.layer.' + i + '.';
        for (const n of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense', 'attention.output.LayerNorm',
          'intermediate.dense', 'output.dense', 'output.LayerNorm']) lin(w + n);
        m.layers.push({ q: w + 'attention.self.query', k: w + 'attention.self.key', v: w + 'attention.self.value', o: w + 'attention.output.dense',
          ln1: w + 'attention.output.LayerNorm', f1: w + 'intermediate.dense', f2: w + 'output.dense', ln2: w + 'output.LayerNorm',
          self: w + 'attention.self.', out: w + 'attention.output.', outIn: true, ffnIn: w + 'intermediate.hidden_states',
          ffn1: w + 'intermediate.dense', act: w + 'intermediate.activation', ffnOutIn: w + 'output.hidden_states',
          ffn2: w + 'output.dense', drop2: w + 'output.dropout', norm2: w + 'output.layernorm' });
      }
    }
    const has = (n) => n in (man.tensors || {}) || (man.export_dropped || []).includes(n) || (man.dropped || []).includes(n);
    m.pooler = !/ForMaskedLM$/.test(cls) && (has(p + 'pooler.dense.weight') || has(p + 'pooler.weight') || !/Model$/.test(cls));
    if (m.pooler) m.poolW = albert ? lin(p + 'pooler') : lin(p + 'pooler.dense');
    if (/ForPreTraining$|ForMaskedLM$/.test(cls)) {
      const h = albert ? 'predictions.' : 'cls.predictions.', t = albert ? h : h + 'transform.';
      m.mlm = { tap: h, t, dense: lin(t + 'dense'), ln: lin(t + 'LayerNorm'), bias: need(h + 'bias'),
        decoder: has(h + 'decoder.weight') ? need(h + 'decoder.weight') : p + 'embeddings.word_embeddings.weight' };
    }
    if (/ForPreTraining$|ForNextSentencePrediction$/.test(cls)) {
      m.pair = albert ? { tap: 'sop_classifier.', w: lin('sop_classifier.classifier') } : { tap: 'cls.seq_relationship.', w: lin('cls.seq_relationship') };
    }
    if (/ForSequenceClassification$/.test(cls)) m.classifier = { w: lin('classifier'), pooling: cfg.classifier_pooling || 'pooler' };
    return m;
  }

  /* Which snapshots of an exported file hold every weight the model reads. */
  function runnableSnaps(model, embedded, man) {
    const out = [];
    (man.snapshots || []).forEach((_, i) => {
      const held = embedded.tensors[i] || {};
      if (model.needs.every((n) => held[n])) out.push(i);
    });
    return out;
  }

  /* The forward pass: ``W(name)`` gives a weight (Float32Array), ``input`` {ids, typeIds, mask (1/0), masked
     (positions read by the MLM head)}. Returns a Map name → {shape, data: Float32Array}, per sample (no batch axis). */
  function run(model, W, input) {
    const { cfg, prefix: p, hs } = model, act = ACT[model.act];
    const T = input.ids.length, E = cfg.embedding_size || cfg.hidden_size, H = cfg.hidden_size, nh = cfg.num_attention_heads;
    const A = nh * hs, I = cfg.intermediate_size, eps = cfg.layer_norm_eps || 1e-12;
    const out = new Map();
    const put = (name, shape, data) => { out.set(name, { shape, data }); return data; };
    const lin = (x, n, k, base, m) => linear(x, n, k, W(base + '.weight'), W(base + '.bias'), m);
    const ln = (x, n, d, base) => layerNorm(x, n, d, W(base + '.weight'), W(base + '.bias'), eps);

    // embeddings
    const e = p + 'embeddings.';
    const pos = Float32Array.from(input.ids, (_, i) => i);
    put(e + 'position_ids', [T], pos);
    put(e + 'input_ids', [T], Float32Array.from(input.ids));
    put(e + 'token_type_ids', [T], Float32Array.from(input.typeIds));
    const rows = (table, idx) => { const o = new Float32Array(T * E); idx.forEach((id, t) => o.set(table.subarray(id * E, (id + 1) * E), t * E)); return o; };
    const word = put(e + 'word', [T, E], rows(W(e + 'word_embeddings.weight'), input.ids));
    const position = put(e + 'position', [T, E], rows(W(e + 'position_embeddings.weight'), Array.from(pos)));
    const type = put(e + 'token_type', [T, E], rows(W(e + 'token_type_embeddings.weight'), input.typeIds));
    const sum = new Float32Array(T * E);
    for (let i = 0; i < sum.length; i++) sum[i] = Math.fround(word[i] + type[i]) + position[i];
    put(e + 'sum', [T, E], sum);
    let x = put(e + 'layernorm', [T, E], ln(sum, T, E, e + 'LayerNorm'));
    put(e + 'dropout', [T, E], x);
    if (model.arch === 'albert') x = put(p + 'encoder.projection', [T, H], lin(x, T, E, p + 'encoder.embedding_hidden_mapping_in', H));

    const maskRow = Float32Array.from(input.mask, (m) => (m ? 0 : F32_MIN));
    for (const L of model.layers) {
      // self-attention
      const s = L.self;
      put(s + 'hidden_states', [T, H], x);
      const ql = put(s + 'query_linear', [T, A], lin(x, T, H, L.q, A));
      const kl = put(s + 'key_linear', [T, A], lin(x, T, H, L.k, A));
      const vl = put(s + 'value_linear', [T, A], lin(x, T, H, L.v, A));
      const q = put(s + 'query', [nh, T, hs], splitHeads(ql, T, nh, hs));
      const k = put(s + 'key', [nh, T, hs], splitHeads(kl, T, nh, hs));
      const v = put(s + 'value', [nh, T, hs], splitHeads(vl, T, nh, hs));
      put(s + 'key_transposed', [nh, hs, T], transposeLast(k, nh, T, hs));
      const scores = new Float32Array(nh * T * T), scaled = new Float32Array(nh * T * T), masked = new Float32Array(nh * T * T);
      const root = Math.sqrt(hs);
      for (let j = 0; j < nh; j++) for (let a = 0; a < T; a++) for (let b = 0; b < T; b++) {
        let d = 0;
        for (let c = 0; c < hs; c++) d += q[(j * T + a) * hs + c] * k[(j * T + b) * hs + c];
        const at = (j * T + a) * T + b;
        scores[at] = d;
        scaled[at] = scores[at] / root;
        masked[at] = scaled[at] + maskRow[b];
      }
      put(s + 'scores', [nh, T, T], scores);
      put(s + 'scores_scaled', [nh, T, T], scaled);
      put(s + 'attention_mask', [T], maskRow);
      put(s + 'scores_masked', [nh, T, T], masked);
      const probs = put(s + 'probs', [nh, T, T], softmaxRows(masked, nh * T, T));
      put(s + 'probs_dropout', [nh, T, T], probs);
      const ctx = new Float32Array(nh * T * hs);
      for (let j = 0; j < nh; j++) for (let a = 0; a < T; a++) for (let c = 0; c < hs; c++) {
        let d = 0;
        for (let b = 0; b < T; b++) d += probs[(j * T + a) * T + b] * v[(j * T + b) * hs + c];
        ctx[(j * T + a) * hs + c] = d;
      }
      put(s + 'context', [nh, T, hs], ctx);
      const merged = mergeHeads(ctx, T, nh, hs);
      put(s + 'context_permute', [T, nh, hs], merged);
      put(s + 'context_reshaped', [T, A], merged);
      // output projection, add & norm
      if (L.outIn) put(L.out + 'hidden_states', [T, A], merged);
      const dense = put(L.out + 'dense', [T, H], lin(merged, T, A, L.o, H));
      put(L.out + 'dropout', [T, H], dense);
      const attended = put(L.out + 'layernorm', [T, H], ln(add(dense, x), T, H, L.ln1));
      // feed-forward
      if (L.ffnIn) put(L.ffnIn, [T, H], attended);
      const h1 = put(L.ffn1, [T, I], lin(attended, T, H, L.f1, I));
      const h2 = put(L.act, [T, I], map(h1, act));
      if (L.ffnOutIn) put(L.ffnOutIn, [T, I], h2);
      const f = put(L.ffn2, [T, H], lin(h2, T, I, L.f2, H));
      put(L.drop2, [T, H], f);
      x = put(L.norm2, [T, H], ln(add(f, attended), T, H, L.ln2));
    }

    let pooled = null;
    if (model.pooler) {
      const pl = p + 'pooler.';
      put(pl + 'hidden_states', [T, H], x);
      const first = put(pl + 'first_token', [H], x.slice(0, H));
      const d = put(pl + 'dense', [H], linear(first, 1, H, W(model.poolW[0]), W(model.poolW[1]), H));
      pooled = put(pl + 'activation', [H], map(d, Math.tanh));
    }
    const m = model.mlm, M = input.masked.length, V = cfg.vocab_size;
    if (m && M) {
      const h = new Float32Array(M * H);
      input.masked.forEach((t, r) => h.set(x.subarray(t * H, (t + 1) * H), r * H));
      put(m.tap + 'h_masked', [M, H], h);
      const width = model.arch === 'albert' ? E : H;
      const d = put(m.t + 'dense', [M, width], linear(h, M, H, W(m.dense[0]), W(m.dense[1]), width));
      const a = put(m.t + 'activation', [M, width], map(d, act));
      const n = put(m.t + 'layernorm', [M, width], layerNorm(a, M, width, W(m.ln[0]), W(m.ln[1]), eps));
      const logits = put(m.tap + 'logits', [M, V], linear(n, M, width, W(m.decoder), W(m.bias), V));
      put(m.tap + 'softmax', [M, V], softmaxRows(logits, M, V));
      const arg = new Float32Array(M);
      for (let r = 0; r < M; r++) { let best = 0; for (let c = 1; c < V; c++) if (logits[r * V + c] > logits[r * V + best]) best = c; arg[r] = best; }
      put(m.tap + 'argmax', [M], arg);
    }
    if (model.pair && pooled) {
      const logits = put(model.pair.tap + 'logits', [2], linear(pooled, 1, H, W(model.pair.w[0]), W(model.pair.w[1]), 2));
      put(model.pair.tap + 'softmax', [2], softmaxRows(logits, 1, 2));
    }
    if (model.classifier) {
      const how = model.classifier.pooling, nl = W(model.classifier.w[1]).length;
      let v = pooled;
      if (how === 'cls') v = x.slice(0, H);
      else if (how === 'mean') {
        v = new Float32Array(H);
        const n = input.mask.reduce((s, b) => s + b, 0);
        for (let t = 0; t < T; t++) if (input.mask[t]) for (let c = 0; c < H; c++) v[c] += x[t * H + c] / n;
      }
      put('logits', [nl], linear(v, 1, H, W(model.classifier.w[0]), W(model.classifier.w[1]), nl));
    }
    return out;
  }

  GB.forward = { describe, run, runnableSnaps, erf, ACT, F32_MIN, softmaxRows };
})();
