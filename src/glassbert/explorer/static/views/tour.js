/* glassbert explorer, view: the article's walk-through (the Tour button, the box in index.html) */
'use strict';
(function () {
  const { $, S, cfg } = GB;

  /* "Exploring BERT" (Muneeb S. Ahmad), section by section: each step opens its view on this run. */
  const findTensor = (suffix) => Object.keys(S.man.tensors).find((n) => n === suffix || n.endsWith('.' + suffix)) || null;
  const TOUR = [
    { title: 'Configuration', panel: 'config-panel', text: 'Figure 4: the model\'s sizes. The article\'s toy has 2 encoder layers, hidden size 7, 5 heads of size 4 (Q, K and V are 20 wide), a feed-forward width of 28 and 14 tokens per sample.' },
    { title: 'Input', panel: 'input-panel', text: 'Figures 5–11: the sentence pair, masked and padded to 14 tokens, its input ids, segment ids and masked positions. Sample 0 masks "cat" and "chase" as in figure 6.' },
    { title: 'Input embedding', tensor: 'embeddings.sum', panel: 'matrix-view', text: 'Figure 12: token + position + segment embeddings, summed ([tokens, hidden]). Move the epoch slider: these are the vectors of figures 13 and 14.' },
    { title: 'Q, K and V', tensor: 'layer.0.attention.self.query', panel: 'matrix-view', text: 'W_Q, W_K and W_V turn the embeddings into queries, keys and values, split into heads (20 → 5 × 4 in the toy).' },
    { title: 'Attention per head', panel: 'attention-view', head: 2, layer: 0, snap: 'last', kind: 'attention', colours: 'uniform', toy: true,
      text: 'softmax(QKᵀ/√d + mask), one grid per head: rows are queries, columns keys. The Tour set the colours to "relative to uniform": white is 1/n (every key alike), red is more, blue less — the toy\'s heads stay below 0.2, dark on the 0–1 scale. The article points at head h2 of sample 0 ("cat" ↔ "chase") late in training.' },
    { title: 'Masking [PAD]', panel: 'attention-view', kind: 'attention_masked', pad: true, text: 'The masked scores: the scaled scores plus the mask, −∞ (grey) in every [PAD] key column, so the softmax gives [PAD] exactly 0. Switch "Show" back to probabilities to compare.' },
    { title: 'Every head, and one weight over training', panel: 'modelview-view', kind: 'attention', colours: 'uniform', head: 2, layer: 0, cell: true, text: 'All layers × heads at once (bertviz\'s model view), and below it one attention weight of the chosen head across every snapshot: watch it rise above the uniform line as training goes on.' },
    { title: 'Add & norm', tensor: 'layer.0.attention.output.layernorm', panel: 'matrix-view', text: 'The heads\' context, projected back to the hidden size, added to the layer\'s input (the residual) and layer-normalised.' },
    { title: 'Feed-forward', tensor: 'layer.0.intermediate.activation', panel: 'matrix-view', text: 'W_1, GELU, W_2: each token on its own through a wider layer (28 in the toy), then add & norm again.' },
    { title: 'MLM logits', tensor: 'cls.predictions.logits', panel: 'matrix-view', text: 'Figure 16: the masked rows (h_masked) through a dense layer, GELU, LayerNorm and the decoder: one score per vocabulary word; its argmax is the prediction.' },
    { title: 'IsNext', tensor: 'cls.seq_relationship.logits', panel: 'predictions-panel', text: 'The [CLS] row through the pooler (tanh) and a 2-way layer. Convention: here class 0 is IsNext and "True" means the second sentence follows the first; the article reads its IsNext column the other way (False = connected).' },
    { title: 'Two epochs side by side', tensor: 'embeddings.sum', panel: 'diff-view', compare: true, text: 'Figures 13 and 14 in one view: the embeddings at the first snapshot (B) and now (A), on one colour scale, and their difference.' },
  ];
  let tourAt = -1;
  // the article's toy: its numbers (2 layers, hidden 7, 5 heads, 14 tokens) are only said on that model
  const isToy = () => cfg('hidden_size') === 7 && cfg('num_hidden_layers') === 2;
  const GENERIC = { Configuration: 'This model\'s sizes: layers, hidden size, heads and their size, the feed-forward width, the vocabulary.',
    Input: 'The input as the model reads it: tokens, their ids, segment ids and (for masked-word models) the masked positions.',
    'Q, K and V': 'W_Q, W_K and W_V turn the embeddings into queries, keys and values, split into heads.',
    'Attention per head': 'softmax(QKᵀ/√d + mask), one grid per head: rows are queries, columns keys. The Tour set the colours to "relative to uniform": white is 1/n, red more, blue less.',
    'Feed-forward': 'W_1, GELU, W_2: each token on its own through a wider layer, then add & norm again.' };
  function textOf(t) { return isToy() || !GENERIC[t.title] ? t.text : GENERIC[t.title]; }
  function tourSteps() {
    return TOUR.filter((t) => (!t.tensor || findTensor(t.tensor)) && $(t.panel) && !$(t.panel).hidden);
  }
  /* The view a step talks about, set up as it says: epoch, layer, head, what is shown, colours, [PAD]. */
  function setView(t) {
    let changed = false;
    if (t.layer !== undefined && t.layer < cfg('num_hidden_layers', 1)) { S.layer = t.layer; changed = true; }
    if (t.head !== undefined && t.head < cfg('num_attention_heads', 1)) { S.head = t.head; changed = true; }
    if (t.kind) { S.kind = t.kind; changed = true; }
    if (t.colours) { S.attnScale = t.colours; S.stretch = false; changed = true; }
    if (t.pad) S.showPad = true;
    if (t.cell && isToy()) {  // the article's pair: the masked "cat" (query) and the "chase" key of sample 0
      const info = GB.sampleInfo(), q = info.tokens.indexOf('[MASK]'), k = info.tokens.indexOf('chase');
      if (q >= 0) S.cellQ = q;
      if (k >= 0) S.cellK = k;
    }
    if (t.snap === 'last' && S.snap !== S.man.snapshots.length - 1) GB.selectSnap(S.man.snapshots.length - 1);
    if (changed || t.pad || t.cell) { GB.update('tour'); GB.saveState(); }
  }
  function showTour(i) {
    const steps = tourSteps();
    document.querySelectorAll('.tour-on').forEach((e) => e.classList.remove('tour-on'));
    if (i < 0 || i >= steps.length) { $('tour-box').hidden = true; tourAt = -1; delete document.body.dataset.tour; return; }
    tourAt = i;
    const t = steps[i], panel = $(t.panel);
    if (t.panel === 'config-panel' || t.panel === 'input-panel') (panel.tagName === 'DETAILS' ? panel : $('input-details')).open = true;
    if (t.tensor) GB.openTensor(findTensor(t.tensor), false);
    setView(t);
    if (t.compare) { S.diffB = 0; GB.redraw('diff'); }
    panel.classList.add('tour-on');
    panel.scrollIntoView({ block: 'start' });
    $('tour-step').textContent = (i + 1) + ' / ' + steps.length;
    $('tour-title').textContent = t.title;
    $('tour-text').textContent = textOf(t);
    $('tour-prev').disabled = i === 0;
    $('tour-next').textContent = i === steps.length - 1 ? 'finish' : 'next ▶';
    $('tour-box').hidden = false;
    document.body.dataset.tour = t.panel;
    if (!$('tour-box').contains(document.activeElement)) $('tour-next').focus({ preventScroll: true });
  }
  function closeTour() { showTour(-1); $('tour-button').focus({ preventScroll: true }); }
  function setupTour() {
    $('tour-button').onclick = () => showTour(0);
    $('tour-next').onclick = () => showTour(tourAt + 1);
    $('tour-prev').onclick = () => showTour(tourAt - 1);
    $('tour-close').onclick = closeTour;
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && tourAt >= 0) { e.preventDefault(); closeTour(); } });
  }

  GB.registerView({ id: 'tour', setup: setupTour });
})();
