/* glassbert explorer: the exported file's own what-if. The page tokenizes the typed text (tokenize.js), reads
   the weights of the slider's snapshot from the file and runs the model (forward.js), then answers with the
   structure the server's POST api/whatif answers ({id, weights, manifest}: the input's tokens, predictions and
   tensors), plus the tensors themselves, which GB.getTensor reads for every view.

   It runs only at the snapshots whose every weight the file holds (the recorder's or the export's size bound
   may leave some out) and says which those are; anywhere else it refuses and the views go back to the
   recorded samples. The last answer's timing and tensors stay on GB.pageModel.last (for tests and curious
   readers). Attribution without gradients: GB.pageModel.occlusion (each token masked in turn, one forward each).

   A large model (MiniLM: 91 MB of float32 weights) is read from the file on the first what-if at a snapshot, one
   weight at a time, the page free between them and the what-if status counting them; its tensors' text lies in
   blocks of their own (export.py: "el"), which are read only then. Weights the export rounded to float16 to fit
   its bound (manifest.export_weights) are said to be so in every answer. */
'use strict';
(function () {
  const { S } = GB;
  const MAX_CHARS = 2000, MAX_TOKENS = 128, MAX_MASKS = 20, TOPK = 5;  // the server's limits (recording/whatif.py)
  let model = null, why = '', tok = null, vocab = null, snaps = [], answers = 0;

  /* Once the recording is loaded: can this file run its model, and at which snapshots? */
  function init() {
    if (model || why) return;
    if (!S.embedded) { why = 'not an exported file'; return; }
    linkBlocks();
    if (S.man.export_whatif) { why = S.man.export_whatif; return; }  // the export says why not, and how
    const d = GB.forward.describe(S.man);
    if (d.error) { why = d.error; return; }
    // the whole vocabulary: the recording's, or the export's copy of the tokenizer's (a recording of a model of
    // more than 5000 tokens keeps only the words it saw, which the views list: S.man.vocab stays as it is)
    const size = (S.man.config || {}).vocab_size;
    vocab = [S.man.vocab, S.man.export_vocab].find((v) => Array.isArray(v) && v.length === size) || null;
    if (!vocab) { why = 'the file does not hold the whole vocabulary (' + size + ' tokens), so the page cannot tokenize'; return; }
    const v = vocab;
    try { tok = GB.tokenize.makeTokenizer(v); } catch (e) { why = e.message; return; }
    snaps = GB.forward.runnableSnaps(d, S.embedded, S.man);
    if (!snaps.length) { why = 'the file holds the model\'s weights at no snapshot (left out by the size bound)'; return; }
    model = d;
  }
  function ready() { init(); return !!model; }
  function reason() { init(); return why; }
  /* In words: where the page runs the model. */
  function where() {
    init();
    if (!model) return '';
    const all = S.man.snapshots.length;
    const f16 = S.man.export_weights === 'float16' ? ' · its weights rounded to float16 to fit this file' : '';
    if (snaps.length === all) return 'the model runs in this page at every snapshot (' + all + ')' + f16;
    return 'the model runs in this page only at ' + snaps.map((i) => GB.snapLabel(i)).join(', ') +
      ' (the other ' + (all - snaps.length) + ' snapshots\' weights are not in this file)' + f16;
  }
  const canRun = (snap) => ready() && snaps.includes(snap);
  /* A tensor whose text the export put in a block of its own ({el}) reads it from there when it is decoded
     (core.js reads entry.b64): the 100 MB of a MiniLM are not parsed with the page's JSON. */
  let linked = false;
  function linkBlocks() {
    if (linked) return;
    linked = true;
    for (const tensors of S.embedded.tensors) {
      for (const e of Object.values(tensors)) {
        if (!e.el || e.b64 !== undefined) continue;
        const id = e.el;
        Object.defineProperty(e, 'b64', { get: () => { const b = document.getElementById(id); return b ? b.textContent : ''; } });
      }
    }
  }
  const limit = () => Math.min(MAX_TOKENS, (S.man.config || {}).max_position_embeddings || MAX_TOKENS);

  /* The typed input as the model reads it: {enc, ids (the clicked words as [MASK]), positions (the MLM head's:
     typed [MASK]s and clicked words), trueIds (the clicked words' own ids; a typed [MASK]'s is [MASK]), maskId}
     or {message} (refused, as the server refuses). */
  function prepare(text, pair, mask, snap) {
    if (!ready()) return { message: 'What-if cannot run in this page: ' + why };
    if (!snaps.includes(snap)) {
      return { message: 'This file does not hold the weights of ' + GB.snapLabel(snap) + ', so the page cannot run the model there: ' + where() + '. Move the slider to one of those.' };
    }
    for (const [k, t] of [['text', text], ['pair', pair]]) {
      if (t && t.length > MAX_CHARS) return { message: k + ' is ' + t.length + ' characters: shorten it to at most ' + MAX_CHARS };
    }
    const enc = tok.encode(text, pair || null), n = enc.ids.length;
    if (n > limit()) return { message: 'the input is ' + n + ' tokens; this model reads at most ' + limit() + ': shorten the text' };
    if (mask.length > MAX_MASKS) return { message: mask.length + ' masked tokens: mask at most ' + MAX_MASKS };
    const maskId = tok.id('[MASK]');
    for (const p of mask) {
      if (!(p >= 0 && p < n)) return { message: 'mask position ' + p + ' is not a token of this input (0..' + (n - 1) + ')' };
      if (/^\[.*\]$/.test(enc.tokens[p]) && enc.ids[p] !== maskId) return { message: 'mask position ' + p + ' is ' + enc.tokens[p] + ': mask a word, not a special token' };
    }
    // the clicked words become [MASK]; their own ids are the MLM labels, a typed [MASK]'s label is [MASK] itself
    const ids = enc.ids.slice(), typed = ids.map((id, i) => (id === maskId ? i : -1)).filter((i) => i >= 0);
    let positions = typed, trueIds = [];
    if (mask.length) {
      positions = [...new Set(typed.concat(mask))].sort((a, b) => a - b);
      trueIds = positions.map((p) => enc.ids[p]);
      for (const p of mask) ids[p] = maskId;
    }
    return { enc, ids, positions, trueIds, maskId };
  }
  /* One stored weight as numbers: core.js decodes the export's format (in slices, the page handed back between
     them) and keeps it for the views too; a dtype it does not hold as float goes through getTensor. */
  async function weightData(snap, name) {
    const e = S.embedded.tensors[snap][name];
    return (await (e.dtype === 'f32' || e.dtype === 'f16' ? GB.embeddedTensor(snap, name) : GB.getTensor(snap, name))).data;
  }

  /* The weights of snapshot ``snap`` the model reads, by name (each decoded once). The first time at a snapshot
     they are decoded one after another, the page handed back between them (a large model's take a second: the
     what-if status counts them, ``progress`` (done, of) when given). */
  const decoded = new Map();
  async function weightsAt(snap, progress) {
    if (decoded.has(snap)) return decoded.get(snap);
    const weights = new Map();
    let done = 0, mark = performance.now();
    for (const name of model.needs) {
      weights.set(name, await weightData(snap, name));
      done++;
      if (performance.now() - mark > 30) {  // a long decode: say how far it is and let the page answer clicks
        if (progress) progress(done, model.needs.length);
        await new Promise((r) => setTimeout(r, 0));
        mark = performance.now();
      }
    }
    decoded.set(snap, weights);
    return weights;
  }
  const f16Note = () => (S.man.export_weights === 'float16' ? ', rounded to float16 in this file' : '');

  /* The what-if at snapshot ``snap``: {id, weights, manifest, tensors, note} or {message} (refused). ``aside``:
     another view's question (the comparison's B), not kept as GB.pageModel.last, which is the what-if box's. */
  async function answer(text, pair, mask, snap, aside) {
    const pre = prepare(text, pair, mask, snap);
    if (pre.message) return pre;
    const { enc, ids, positions, trueIds } = pre, n = ids.length;
    const t0 = performance.now();
    const status = !aside && document.getElementById('whatif-status');
    const weights = await weightsAt(snap, status ? (done, of) => {
      status.textContent = 'reading the weights of ' + GB.snapLabel(snap) + ' from this file (' + done + ' of ' + of + ', once per snapshot)…';
    } : null);
    const t1 = performance.now();
    const tensors = GB.forward.run(model, (name) => weights.get(name), { ids, typeIds: enc.typeIds, mask: ids.map(() => 1), masked: positions });
    const t2 = performance.now();
    const entry = S.man.snapshots[snap];
    const pred = {};
    const logits = model.mlm && tensors.get(model.mlm.tap + 'logits');
    if (logits && positions.length) {
      const V = logits.shape[1], probs = GB.forward.softmaxRows(logits.data, positions.length, V);
      pred.masked_topk_ids = []; pred.masked_topk_probs = []; pred.masked_pred_ids = [];
      for (let r = 0; r < positions.length; r++) {
        const row = Array.from(probs.subarray(r * V, (r + 1) * V)).map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, TOPK);
        pred.masked_topk_ids.push(row.map((x) => x[1]));
        pred.masked_topk_probs.push(row.map((x) => Math.round(x[0] * 1e4) / 1e4));
        pred.masked_pred_ids.push(row[0][1]);
      }
    }
    const pairSm = model.pair && tensors.get(model.pair.tap + 'softmax');
    if (pairSm) { pred.is_next_prob = Math.round(pairSm.data[0] * 1e4) / 1e4; pred.is_next_pred = pairSm.data[0] >= pairSm.data[1]; }
    const clf = tensors.get('logits');
    if (model.classifier && clf) {
      const p = GB.forward.softmaxRows(clf.data, 1, clf.shape[0]);
      pred.label_probs = Array.from(p, (x) => Math.round(x * 1e4) / 1e4);
      pred.label_pred = pred.label_probs.indexOf(Math.max(...pred.label_probs));
    }
    const metas = {};
    for (const [name, t] of tensors) {
      const rec = S.man.tensors[name] || {}, point = GB.catEntry(name) || {};
      metas[name] = { shape: t.shape, dims: rec.dims && rec.dims.length === t.shape.length ? rec.dims : t.shape.map((_, i) => 'd' + i),
        kind: 'activation', label: rec.label || point.label || name, priority: rec.priority !== undefined ? rec.priority : 3 };
    }
    const shown = pair ? text + ' \u2016 ' + pair : text;
    const man = {
      samples: [{ index: 0, text: shown, tokens: ids.map((i) => vocab[i]), input_ids: ids, token_type_ids: enc.typeIds,
        attention_mask: ids.map(() => 1), length: n, masked_positions: positions, masked_ids: trueIds,
        masked_tokens: trueIds.map((i) => vocab[i]), is_next: null }],
      snapshots: [{ epoch: entry.epoch, step: entry.step, file: null, aliases: {}, predictions: [pred] }],
      tensors: metas, config: S.man.config, vocab, pair_labels: S.man.pair_labels, model: S.man.model,
    };
    const note = enc.unknown.length ? 'not in the vocabulary, so [UNK]: ' + [...new Set(enc.unknown)].map((w) => '"' + w + '"').join(', ') : '';
    const ms = t2 - t0;
    const weightsText = 'the weights recorded at ' + GB.snapLabel(snap) + f16Note() + ', run in this page (' + ms.toFixed(ms < 10 ? 1 : 0) + ' ms)';
    if (!aside) GB.pageModel.last = { snap, ids, tokens: man.samples[0].tokens, unknown: enc.unknown, ms, weightsMs: t1 - t0, forwardMs: t2 - t1, tensors };
    return { id: 'page' + (++answers), weights: weightsText, manifest: man, tensors, note };
  }

  /* Occlusion, the attribution a page without gradients can compute: for each token but [CLS], [SEP], [PAD] and
     [MASK], the model runs again with that one token replaced by [MASK]; its value is
         p(target | the input) − p(target | the input with that token masked)
     (positive: the token made the target likelier). Targets as the server's what-if explains them
     (recording/attribution.py, input_targets): the word at the first [MASK] (the clicked word, true; a typed
     [MASK]: the predicted word), the pair head's predicted class for a pair, else the prediction (a
     classifier's label; a pretraining model's pair class). ``stale()`` true: stop, answering null (a newer
     question was asked). {snap, weights, tokens, method: 'occlusion', attributions: [entry per target],
     forwards, ms} or {message} (refused). */
  async function occlusion(input, snap, stale) {
    const pre = prepare(input.text, input.pair || null, input.mask || [], snap);
    if (pre.message) return pre;
    const { enc, ids, positions, trueIds, maskId } = pre, T = ids.length;
    const t0 = performance.now();
    const weights = await weightsAt(snap), W = (name) => weights.get(name);
    const run = (x) => GB.forward.run(model, W, { ids: x, typeIds: enc.typeIds, mask: x.map(() => 1), masked: positions });
    const names = S.man.pair_labels || ['IsNext', 'NotNext'], isPair = enc.typeIds.some((t) => t);
    const labelNames = (S.man.config || {}).id2label || {};
    // the probabilities each target reads, from one forward's tensors
    const readers = [];
    const mlmProbs = (t, row) => {
      const lg = t.get(model.mlm.tap + 'logits'), V = lg.shape[1];
      return GB.forward.softmaxRows(lg.data.subarray(row * V, (row + 1) * V), 1, V);
    };
    const pairProbs = (t) => t.get(model.pair.tap + 'softmax').data;
    const clfProbs = (t) => { const c = t.get('logits'); return GB.forward.softmaxRows(c.data, 1, c.shape[0]); };
    const quote = (t) => "'" + t + "'";  // as the server's targets name them (Python's repr)
    const first = run(ids);
    const argmax = (p) => { let b = 0; for (let i = 1; i < p.length; i++) if (p[i] > p[b]) b = i; return b; };
    const at = positions.find((p) => ids[p] === maskId);
    if (model.mlm && at !== undefined) {
      const row = positions.indexOf(at), k = trueIds.length ? trueIds[row] : maskId, p0 = mlmProbs(first, row);
      const gold = k !== maskId, cls = gold ? k : argmax(p0), word = vocab[cls];
      readers.push({ target: 'word ' + quote(word) + ' at [MASK] position ' + at, kind: 'word', 'class': word, position: at, gold,
        prediction: vocab[argmax(p0)], predicted_probability: p0[argmax(p0)], f: (t) => mlmProbs(t, row)[cls] });
    }
    const pairReader = () => {
      const p0 = pairProbs(first), cls = argmax(p0);
      return { target: (model.pair.tap.startsWith('sop') ? 'SOP ' : 'NSP ') + quote(names[cls]), kind: model.pair.tap.startsWith('sop') ? 'sop' : 'nsp',
        'class': names[cls], position: null, gold: false, prediction: names[cls], predicted_probability: p0[cls], f: (t) => pairProbs(t)[cls] };
    };
    if (model.pair && first.has(model.pair.tap + 'softmax') && isPair) readers.push(pairReader());
    if (!readers.length) {
      if (model.classifier && first.has('logits')) {
        const p0 = clfProbs(first), cls = argmax(p0), name = labelNames[cls] !== undefined ? labelNames[cls] : 'label ' + cls;
        readers.push({ target: 'label ' + quote(name), kind: 'label', 'class': name, position: null, gold: false,
          prediction: name, predicted_probability: p0[cls], f: (t) => clfProbs(t)[cls] });
      } else if (model.pair && first.has(model.pair.tap + 'softmax')) {
        readers.push(pairReader());
      }
    }
    if (!readers.length) {
      const why = model.mlm ? 'the text has no [MASK]: click a word to mask it (the MLM head explains the word at a [MASK])'
        : 'this model has no head to explain (a bare encoder): nothing to attribute';
      return { snap, tokens: ids.map((i) => vocab[i]), method: 'occlusion', attributions: [{ target: 'predicted', error: why }], forwards: 1, ms: performance.now() - t0 };
    }
    const base = readers.map((r) => r.f(first));
    const values = readers.map(() => new Array(T).fill(0));
    const special = new Set(['[CLS]', '[SEP]', '[PAD]', '[MASK]']);
    let forwards = 1;
    for (let i = 0; i < T; i++) {
      if (special.has(vocab[ids[i]]) || ids[i] === maskId) continue;
      if (stale && stale()) return null;
      await new Promise((r) => setTimeout(r, 0));  // the page stays responsive between forwards
      const x = ids.slice();
      x[i] = maskId;
      const t = run(x);
      forwards++;
      readers.forEach((r, k) => { values[k][i] = base[k] - r.f(t); });
    }
    const ms = performance.now() - t0;
    const attributions = readers.map((r, k) => {
      const entry = Object.assign({}, r);
      delete entry.f;
      return Object.assign(entry, { probability: base[k], occlusion: values[k], occluded: forwards - 1 });
    });
    return { snap, tokens: ids.map((i) => vocab[i]), method: 'occlusion', attributions, forwards, ms,
      weights: 'the weights recorded at ' + GB.snapLabel(snap) + f16Note() + ', run in this page' };
  }

  /* A computed tensor for GB.getTensor (rows A..B−1 of its first axis when ``rows``). */
  function tensor(local, name, rows) {
    const t = local.get(name);
    if (!t) return Promise.reject(new Error(name + ': not computed for this input (the MLM head runs only where a word is masked)'));
    if (!rows) return Promise.resolve(t);
    const per = t.shape.slice(1).reduce((a, b) => a * b, 1), stop = Math.min(rows[1], t.shape[0]);
    return Promise.resolve({ shape: [stop - rows[0]].concat(t.shape.slice(1)), data: t.data.subarray(rows[0] * per, stop * per) });
  }

  GB.pageModel = { ready, reason, where, canRun, answer, occlusion, tensor, last: null };
})();
