"""Same weights, same input → the same numbers as transformers (max abs ≤ 1e-5, fp32, eval mode)."""
from __future__ import annotations

import pytest
import torch

import glassbert as gb
from glassbert.registry import TASK_MODELS

transformers = pytest.importorskip("transformers")
TOL = 1e-5


def hf_config(attn: str, num_labels: int = 3):
    return transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=37, max_position_embeddings=64, num_labels=num_labels,
                                   attn_implementation=attn)


def padded_batch(vocab=99, lengths=(11, 7, 3, 9), pairs=True):
    g = torch.Generator().manual_seed(0)
    T = max(lengths)
    ids = torch.randint(5, vocab, (len(lengths), T), generator=g)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    types = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = 0
        if pairs:
            types[i, n // 2:n] = 1
    return dict(input_ids=ids, token_type_ids=types, attention_mask=mask)


def load_both(tmp_path, name, attn):
    torch.manual_seed(0)
    labels = 2 if name == "BertForQuestionAnswering" else 3  # transformers' QA head needs exactly 2
    hf = getattr(transformers, name)(hf_config(attn, labels)).eval()
    hf.save_pretrained(tmp_path)
    ours = TASK_MODELS[name].from_pretrained(tmp_path, attn_implementation="sdpa" if attn == "sdpa" else "eager")
    return hf, ours.eval()


def close(a, b, mask=None):
    diff = (a - b).abs()
    if mask is not None:
        diff = diff[mask.bool()]
    return diff.max().item()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_bert_model_parity_random_weights(tmp_path, attn):
    hf, ours = load_both(tmp_path, "BertModel", attn)
    batch = padded_batch()
    with torch.no_grad():
        h = hf(**batch, output_hidden_states=True)
        o = ours(**batch)
    real = batch["attention_mask"]
    # the fast path zeroes padding rows, the explicit path computes them like transformers
    mask = real if attn == "sdpa" else None
    assert close(o.sequence_output, h.last_hidden_state, mask) <= TOL
    assert close(o.pooled_output, h.pooler_output) <= TOL
    assert len(o.encoder_outputs) == 2 and o.encoder_outputs[-1] is o.sequence_output
    for ours_layer, hf_layer in zip(o.encoder_outputs, h.hidden_states[1:]):
        assert close(ours_layer, hf_layer, mask) <= TOL
    assert close(o.embedding_output, h.hidden_states[0]) <= TOL
    if attn == "sdpa":
        assert (o.sequence_output[~real.bool()] == 0).all()


def test_both_attention_paths_agree_and_return_attentions(tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertModel(hf_config("eager")).eval()
    hf.save_pretrained(tmp_path)
    eager = gb.BertModel.from_pretrained(tmp_path, attn_implementation="eager")
    fast = gb.BertModel.from_pretrained(tmp_path, attn_implementation="sdpa")
    batch = padded_batch()
    with torch.no_grad():
        h = hf(**batch, output_attentions=True)
        e = eager(**batch, output_attentions=True)
        f = fast(**batch)
        fa = fast(**batch, output_attentions=True)  # attentions asked on the sdpa path
    m = batch["attention_mask"]
    assert close(e.sequence_output, f.sequence_output, m) <= TOL
    for path in (e, fa):
        assert len(path.attentions) == 2
        for a, b in zip(path.attentions, h.attentions):
            assert a.shape == (4, 4, 11, 11)
            assert close(a, b) <= TOL
    assert f.attentions is None


def test_head_size_apart_from_hidden_over_heads():
    """The toy model of "Exploring BERT" (Muneeb S. Ahmad): hidden 7, 5 heads of size 4."""
    cfg = gb.BertConfig.preset("toy")
    model = gb.BertForPreTraining(cfg).eval()
    q = model.bert.encoder.layer[0].attention.self.query
    assert tuple(q.weight.shape) == (20, 7)
    batch = padded_batch(vocab=cfg.vocab_size, lengths=(14, 9))
    with torch.no_grad():
        a = model(**batch).prediction_logits
        eager = gb.BertForPreTraining(cfg.replace(attn_implementation="eager")).eval()
        eager.load_state_dict(model.state_dict())
        b = eager(**batch).prediction_logits
    m = batch["attention_mask"]
    assert close(a, b, m) <= TOL


def _labels(batch, vocab):
    g = torch.Generator().manual_seed(1)
    labels = torch.full_like(batch["input_ids"], -100)
    pick = (torch.rand(batch["input_ids"].shape, generator=g) < 0.3) & batch["attention_mask"].bool()
    pick[:, 1] = True
    labels[pick] = torch.randint(0, vocab, (int(pick.sum()),), generator=g)
    return labels


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_pretraining_heads_parity(tmp_path, attn):
    hf, ours = load_both(tmp_path, "BertForPreTraining", attn)
    batch = padded_batch()
    labels = _labels(batch, 99)
    nsp = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        h = hf(**batch, labels=labels, next_sentence_label=nsp)
        o = ours(**batch, labels=labels, next_sentence_label=nsp)
        full = ours(**batch)
    assert abs(o.loss.item() - h.loss.item()) <= TOL
    assert close(o.seq_relationship_logits, h.seq_relationship_logits) <= TOL
    # masked-only decoding: the M rows equal transformers' logits at those positions
    flat = h.prediction_logits.reshape(-1, 99)
    assert o.prediction_logits.shape == (int((labels != -100).sum()), 99)
    assert close(o.prediction_logits, flat[o.masked_index]) <= TOL
    assert full.prediction_logits.shape == (4, 11, 99)
    mask = batch["attention_mask"][..., None].expand(-1, -1, 99) if attn == "sdpa" else None
    assert close(full.prediction_logits, h.prediction_logits, mask) <= TOL
    # the decoder is tied to the word embeddings
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight


def test_nsp_class_zero_is_not_ignored(tmp_path):
    """NSP label 0 (IsNext) must count in the loss: the classic ignore_index bug."""
    hf, ours = load_both(tmp_path, "BertForNextSentencePrediction", "eager")
    batch = padded_batch()
    zeros = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        o = ours(**batch, next_sentence_label=zeros)
        h = hf(**batch, labels=zeros)
    assert o.loss.item() > 0 and abs(o.loss.item() - h.loss.item()) <= TOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_masked_lm_parity(tmp_path, attn):
    hf, ours = load_both(tmp_path, "BertForMaskedLM", attn)
    batch = padded_batch()
    labels = _labels(batch, 99)
    with torch.no_grad():
        h = hf(**batch, labels=labels)
        o = ours(**batch, labels=labels)
    assert abs(o.loss.item() - h.loss.item()) <= TOL
    assert close(o.prediction_logits, h.logits.reshape(-1, 99)[o.masked_index]) <= TOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_sequence_classification_parity(tmp_path, attn):
    hf, ours = load_both(tmp_path, "BertForSequenceClassification", attn)
    batch = padded_batch()
    labels = torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        h = hf(**batch, labels=labels)
        o = ours(**batch, labels=labels)
    assert close(o.logits, h.logits) <= TOL
    assert abs(o.loss.item() - h.loss.item()) <= TOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_token_classification_parity(tmp_path, attn):
    hf, ours = load_both(tmp_path, "BertForTokenClassification", attn)
    batch = padded_batch()
    labels = torch.randint(0, 3, batch["input_ids"].shape)
    labels[batch["attention_mask"] == 0] = -100
    with torch.no_grad():
        h = hf(**batch, labels=labels)
        o = ours(**batch, labels=labels)
    mask = batch["attention_mask"][..., None].expand(-1, -1, 3)
    assert close(o.logits, h.logits, mask) <= TOL
    assert abs(o.loss.item() - h.loss.item()) <= TOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_question_answering_parity(tmp_path, attn):
    hf, ours = load_both(tmp_path, "BertForQuestionAnswering", attn)
    batch = padded_batch()
    start, end = torch.tensor([1, 2, 0, 40]), torch.tensor([3, 4, 0, 41])  # 40/41: outside → ignored
    with torch.no_grad():
        h = hf(**batch, start_positions=start, end_positions=end)
        o = ours(**batch, start_positions=start, end_positions=end)
    m = batch["attention_mask"]
    assert close(o.start_logits, h.start_logits, m) <= TOL
    assert close(o.end_logits, h.end_logits, m) <= TOL
    # we keep padding out of the softmax; transformers' loss with the same masking is ours
    pad = ~m.bool()
    neg = torch.finfo(torch.float32).min
    ce = torch.nn.functional.cross_entropy
    ref = (ce(h.start_logits.masked_fill(pad, neg), start.clamp(0, 11), ignore_index=11)
           + ce(h.end_logits.masked_fill(pad, neg), end.clamp(0, 11), ignore_index=11)) / 2
    assert abs(o.loss.item() - ref.item()) <= TOL
    assert (o.start_logits[pad] == neg).all()


def test_init_follows_bert():
    model = gb.BertForPreTraining(gb.BertConfig.preset("tiny", vocab_size=1000))
    w = model.bert.encoder.layer[0].attention.self.query.weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert (model.bert.encoder.layer[0].attention.self.query.bias == 0).all()
    ln = model.bert.encoder.layer[0].output.LayerNorm
    assert (ln.weight == 1).all() and (ln.bias == 0).all()
    assert (model.bert.embeddings.word_embeddings.weight[0] == 0).all()  # padding row
    assert (model.cls.predictions.bias == 0).all()
