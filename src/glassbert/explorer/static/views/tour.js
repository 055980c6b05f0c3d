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
    { title: 'Attention per head', panel: 'attention-view', head: 2, text: 'softmax(QKᵀ/√d + mask), one grid per head: rows are queries, columns keys; colours on the fixed 0–1 scale. The article points at head h2 of sample 0 ("cat" ↔ "chase") late in training.' },
    { title: 'Add & norm', tensor: 'layer.0.attention.output.layernorm', panel: 'matrix-view', text: 'The heads\' context, projected back to the hidden size, added to the layer\'s input (the residual) and layer-normalised.' },
    { title: 'Feed-forward', tensor: 'layer.0.intermediate.activation', panel: 'matrix-view', text: 'W_1, GELU, W_2: each token on its own through a wider layer (28 in the toy), then add & norm again.' },
    { title: 'MLM logits', tensor: 'cls.predictions.logits', panel: 'matrix-view', text: 'Figure 16: the masked rows (h_masked) through a dense layer, GELU, LayerNorm and the decoder: one score per vocabulary word; its argmax is the prediction.' },
    { title: 'IsNext', tensor: 'cls.seq_relationship.logits', panel: 'predictions-panel', text: 'The [CLS] row through the pooler (tanh) and a 2-way layer. Convention: here class 0 is IsNext and "True" means the second sentence follows the first; the article reads its IsNext column the other way (False = connected).' },
    { title: 'Two epochs side by side', tensor: 'embeddings.sum', panel: 'diff-view', compare: true, text: 'Figures 13 and 14 in one view: the embeddings at the first snapshot (B) and now (A), on one colour scale, and their difference.' },
  ];
  let tourAt = -1;
  function tourSteps() {
    return TOUR.filter((t) => (!t.tensor || findTensor(t.tensor)) && $(t.panel) && !$(t.panel).hidden);
  }
  function showTour(i) {
    const steps = tourSteps();
    document.querySelectorAll('.tour-on').forEach((e) => e.classList.remove('tour-on'));
    if (i < 0 || i >= steps.length) { $('tour-box').hidden = true; tourAt = -1; delete document.body.dataset.tour; return; }
    tourAt = i;
    const t = steps[i], panel = $(t.panel);
    if (t.panel === 'config-panel' || t.panel === 'input-panel') (panel.tagName === 'DETAILS' ? panel : $('input-details')).open = true;
    if (t.tensor) GB.openTensor(findTensor(t.tensor), false);
    if (t.head !== undefined && t.head < cfg('num_attention_heads', 1)) { S.head = t.head; GB.redraw('attention'); }
    if (t.compare) { S.diffB = 0; GB.redraw('diff'); }
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

  GB.registerView({ id: 'tour', setup: setupTour });
})();
