"""ALBERT: the same numbers as transformers' AlbertModel and every Albert head (max abs ≤ 1e-5, fp32, eval),
both attention paths, padded batches; checkpoints both ways; configs; capture points of shared layers;
published ALBERT tokenizer directories."""
from __future__ import annotations

import json
import logging

import pytest
import torch

import glassbert as gb
from glassbert.capture import Capture, catalogue
from glassbert.errors import InputError, MissingError
from glassbert.registry import TASK_MODELS, load_model
from glassbert.tokenizer import Tokenizer
from glassbert.trace import trace
from test_model_parity import close, padded_batch  # BERT's padded batch (lengths 11, 7, 3, 9; pairs) and diff

transformers = pytest.importorskip("transformers")
TOL = 1e-5
VOCAB = 99
HEADS = ["AlbertModel", "AlbertForPreTraining", "AlbertForMaskedLM", "AlbertForSequenceClassification",
         "AlbertForTokenClassification", "AlbertForQuestionAnswering"]
# E ≠ H, four layers on two groups of shared weights
TINY = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2,
            num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
# the published ALBERT-base v2 shape
BASE = dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12, num_hidden_groups=1,
            num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)


def labels_for(name, batch, vocab=VOCAB):
    """The label arguments of each head, under transformers' names (ours take the same)."""
    g = torch.Generator().manual_seed(1)
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    if name in ("AlbertForPreTraining", "AlbertForMaskedLM"):
        labels = torch.full_like(ids, -100)
        pick = (torch.rand(ids.shape, generator=g) < 0.3) & mask
        pick[:, 1] = True
        labels[pick] = torch.randint(0, vocab, (int(pick.sum()),), generator=g)
        extra = {"sentence_order_label": torch.tensor([0, 1, 1, 0])} if name == "AlbertForPreTraining" else {}
        return {"labels": labels, **extra}
    if name == "AlbertForSequenceClassification":
        return {"labels": torch.tensor([0, 2, 1, 2])}
    if name == "AlbertForTokenClassification":
        labels = torch.randint(0, 3, ids.shape, generator=g)
        labels[~mask] = -100
        return {"labels": labels}
    return {}


def load_both(tmp_path, name, attn, sizes=TINY, **extra):
    torch.manual_seed(0)
    labels = 2 if name in ("AlbertForQuestionAnswering", "AlbertForPreTraining") else 3
    hf_config = transformers.AlbertConfig(**{**sizes, **extra}, num_labels=labels, attn_implementation=attn)
    hf = getattr(transformers, name)(hf_config).eval()
    hf.save_pretrained(tmp_path)
    ours = TASK_MODELS[name].from_pretrained(tmp_path, attn_implementation=attn)
    return hf, ours.eval()


def compare(name, hf, ours, batch, real_rows_only):
    """max |ours − transformers| of every output of head ``name`` (without labels): a dict name → diff.
    ``real_rows_only``: compare token rows of real tokens only (the fast path zeroes padding rows)."""
    with torch.no_grad():
        h = hf(**batch)
        o = ours(**batch)
    m = batch["attention_mask"] if real_rows_only else None
    if name == "AlbertModel":
        assert o.embedding_output.shape[-1] == ours.config.embedding_size != ours.config.hidden_size
        return {"sequence_output": close(o.sequence_output, h.last_hidden_state, m),
                "pooled_output": close(o.pooled_output, h.pooler_output)}
    if name == "AlbertForPreTraining":
        return {"prediction_logits": close(o.prediction_logits, h.prediction_logits, m),
                "sop_logits": close(o.sop_logits, h.sop_logits)}
    if name == "AlbertForMaskedLM":
        return {"prediction_logits": close(o.prediction_logits, h.logits, m)}
    if name == "AlbertForSequenceClassification":
        return {"logits": close(o.logits, h.logits)}
    if name == "AlbertForTokenClassification":
        return {"logits": close(o.logits, h.logits, m)}
    mask = batch["attention_mask"]  # our QA head never puts a span on padding
    return {"start_logits": close(o.start_logits, h.start_logits, mask),
            "end_logits": close(o.end_logits, h.end_logits, mask)}


# ─── outputs ────────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", HEADS)
def test_every_head_equals_transformers_on_a_padded_batch(tmp_path, name, attn):
    hf, ours = load_both(tmp_path, name, attn)
    diffs = compare(name, hf, ours, padded_batch(), real_rows_only=attn == "sdpa")
    assert max(diffs.values()) <= TOL, diffs


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_every_layer_run_equals_transformers_hidden_states(tmp_path, attn):
    """Two groups of two inner layers: one output per AlbertLayer run, as transformers' hidden_states."""
    hf, ours = load_both(tmp_path, "AlbertModel", attn, inner_group_num=2)
    batch = padded_batch()
    with torch.no_grad():
        h = hf(**batch, output_hidden_states=True)
        o = ours(**batch)
    assert len(o.encoder_outputs) == len(h.hidden_states) - 1 == 4 * 2
    mask = batch["attention_mask"] if attn == "sdpa" else None
    for ours_layer, hf_layer in zip(o.encoder_outputs, h.hidden_states[1:]):
        assert close(ours_layer, hf_layer, mask) <= TOL
    if attn == "sdpa":
        assert (o.sequence_output[~batch["attention_mask"].bool()] == 0).all()


def test_attentions_on_both_paths_equal_transformers(tmp_path):
    hf, eager = load_both(tmp_path, "AlbertModel", "eager")
    fast = gb.AlbertModel.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    batch = padded_batch()
    with torch.no_grad():
        h = hf(**batch, output_attentions=True)
        e = eager(**batch, output_attentions=True)
        f = fast(**batch, output_attentions=True)
    for path in (e, f):
        assert len(path.attentions) == len(h.attentions) == 4
        for a, b in zip(path.attentions, h.attentions):
            assert a.shape == (4, 4, 11, 11) and close(a, b) <= TOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", ["AlbertForPreTraining", "AlbertForMaskedLM", "AlbertForSequenceClassification",
                                  "AlbertForTokenClassification"])
def test_losses_equal_transformers(tmp_path, name, attn):
    hf, ours = load_both(tmp_path, name, attn)
    batch = padded_batch()
    labels = labels_for(name, batch)
    with torch.no_grad():
        h = hf(**batch, **labels)
        o = ours(**batch, **labels)
    assert o.loss.item() > 0 and abs(o.loss.item() - h.loss.item()) <= TOL
    if name in ("AlbertForPreTraining", "AlbertForMaskedLM"):  # decoded at the masked rows only
        flat = (h.prediction_logits if name == "AlbertForPreTraining" else h.logits).reshape(-1, VOCAB)
        assert o.prediction_logits.shape == (int((labels["labels"] != -100).sum()), VOCAB)
        assert close(o.prediction_logits, flat[o.masked_index]) <= TOL


def test_sop_label_zero_counts_and_the_parts_add_up(tmp_path):
    """SOP 0 = in order, 1 = swapped; class 0 is a real class, not an ignored index."""
    hf, ours = load_both(tmp_path, "AlbertForPreTraining", "eager")
    batch = padded_batch()
    labels = labels_for("AlbertForPreTraining", batch)["labels"]
    in_order = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        o = ours(**batch, labels=labels, sentence_order_label=in_order)
        h = hf(**batch, labels=labels, sentence_order_label=in_order)
        sop_only = ours(**batch, sentence_order_label=in_order)
    assert abs(o.loss.item() - h.loss.item()) <= TOL
    expected = torch.nn.functional.cross_entropy(h.sop_logits, in_order)
    assert o.sop_loss.item() > 0 and abs(o.sop_loss.item() - expected.item()) <= TOL
    assert abs(o.loss.item() - (o.mlm_loss + o.sop_loss).item()) <= TOL
    assert sop_only.loss.item() == pytest.approx(o.sop_loss.item(), abs=TOL)
    assert o.sop_logits is o.seq_relationship_logits and o.nsp_loss is o.sop_loss  # code written for NSP reads SOP


def test_question_answering_loss_keeps_padding_out_as_for_bert(tmp_path):
    hf, ours = load_both(tmp_path, "AlbertForQuestionAnswering", "sdpa")
    batch = padded_batch()
    start, end = torch.tensor([1, 2, 0, 40]), torch.tensor([3, 4, 0, 41])  # 40/41: outside → ignored
    with torch.no_grad():
        h = hf(**batch)
        o = ours(**batch, start_positions=start, end_positions=end)
    pad = ~batch["attention_mask"].bool()
    neg = torch.finfo(torch.float32).min
    ce = torch.nn.functional.cross_entropy
    ref = (ce(h.start_logits.masked_fill(pad, neg), start.clamp(0, 11), ignore_index=11)
           + ce(h.end_logits.masked_fill(pad, neg), end.clamp(0, 11), ignore_index=11)) / 2
    assert abs(o.loss.item() - ref.item()) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", HEADS)
def test_base_size_heads_equal_transformers(tmp_path, name, attn):
    """ALBERT-base v2's shape (E 128, H 768, 12 layers sharing one group, vocab 30000)."""
    hf, ours = load_both(tmp_path, name, attn, sizes=BASE)
    diffs = compare(name, hf, ours, padded_batch(vocab=30000), real_rows_only=attn == "sdpa")
    assert max(diffs.values()) <= TOL, diffs


# ─── checkpoints both ways ──────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("name", HEADS)
def test_saved_dir_loads_in_transformers_with_no_missing_keys_and_equal_outputs(tmp_path, name):
    torch.manual_seed(0)
    config = gb.AlbertConfig(**TINY, num_labels=3, attn_implementation="eager")
    ours = TASK_MODELS[name](config).eval()
    ours.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert (written["model_type"], written["architectures"], written["embedding_size"]) == ("albert", [name], 16)
    hf, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    diffs = compare(name, hf.eval(), ours, padded_batch(), real_rows_only=False)
    assert max(diffs.values()) <= TOL, diffs


def test_round_trip_shares_the_weights_it_shares(tmp_path):
    config = gb.AlbertConfig.preset("toy", num_hidden_layers=4, num_hidden_groups=2)
    model = gb.AlbertForPreTraining(config)
    model.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    assert type(again) is gb.AlbertForPreTraining and again.config == config
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert again.predictions.decoder.weight is again.albert.embeddings.word_embeddings.weight
    assert again.predictions.decoder.weight.shape == (64, 4)  # V × E
    runs = again.albert.encoder.runs
    assert [r.module for r in runs] == [again.albert.encoder.albert_layer_groups[g].albert_layers[0]
                                        for g in (0, 0, 1, 1)]


def test_a_task_model_from_a_bare_albert_and_load_model_fallbacks(tmp_path, caplog):
    gb.AlbertModel(gb.AlbertConfig(**TINY)).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        classifier = gb.AlbertForSequenceClassification.from_pretrained(tmp_path)
    assert "classifier.weight" in caplog.text  # newly initialized, and said so
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "architectures": ["AlbertForMultipleChoice"]}))
    assert type(load_model(tmp_path)) is gb.AlbertModel  # a head we do not have: the bare ALBERT
    assert classifier.albert.config.embedding_size == 16


def test_the_wrong_class_for_a_directory_is_one_clear_error(tmp_path):
    gb.AlbertModel(gb.AlbertConfig(**TINY)).save_pretrained(tmp_path / "albert")
    gb.BertModel(gb.BertConfig.preset("toy")).save_pretrained(tmp_path / "bert")
    with pytest.raises(InputError, match=r"model_type 'albert', but BertModel is 'bert'.*load_model"):
        gb.BertModel.from_pretrained(tmp_path / "albert")
    with pytest.raises(InputError, match=r"model_type 'bert', but AlbertForMaskedLM is 'albert'"):
        gb.AlbertForMaskedLM.from_pretrained(tmp_path / "bert")
    with pytest.raises(TypeError, match="AlbertModel expects a AlbertConfig, got BertConfig"):
        gb.AlbertModel(gb.BertConfig.preset("toy"))


def test_an_incomplete_albert_checkpoint_is_named(tmp_path):
    import safetensors.torch
    gb.AlbertModel(gb.AlbertConfig(**TINY)).save_pretrained(tmp_path)
    state = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    del state["encoder.embedding_hidden_mapping_in.weight"]
    safetensors.torch.save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(InputError, match=r"1 encoder weights are missing.*embedding_hidden_mapping_in.*ALBERT"):
        gb.AlbertForMaskedLM.from_pretrained(tmp_path)


# ─── config ─────────────────────────────────────────────────────────────────────────────────
def test_presets():
    shapes = {name: (c.embedding_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                     c.intermediate_size, c.num_hidden_groups, c.vocab_size)
              for name, c in ((n, gb.AlbertConfig.preset(n)) for n in ("toy", "tiny", "base", "large"))}
    assert shapes["base"] == (128, 768, 12, 12, 3072, 1, 30000)
    assert shapes["large"] == (128, 1024, 24, 16, 4096, 1, 30000)
    toy = gb.AlbertConfig.preset("toy")
    assert toy.embedding_size < toy.hidden_size and toy.num_hidden_groups < toy.num_hidden_layers
    assert (toy.hidden_act, toy.hidden_dropout_prob) == ("gelu_new", 0.0)
    assert gb.BertConfig.preset("base").embedding_size == 768  # BERT: E = H


def test_config_json_both_ways_and_published_keys(tmp_path, caplog):
    config = gb.AlbertConfig.preset("tiny", num_hidden_groups=2, inner_group_num=2, id2label={0: "a", 1: "b"})
    config.save(tmp_path)
    loaded = gb.BertConfig.load(tmp_path)  # the class config.json's model_type names
    assert type(loaded) is gb.AlbertConfig and loaded == config
    hf = transformers.AlbertConfig.from_pretrained(tmp_path)
    assert (hf.embedding_size, hf.num_hidden_groups, hf.inner_group_num, hf.classifier_dropout_prob) == (64, 2, 2, 0.1)
    # albert-base-v2's config.json, TF-era keys and all
    published = {"architectures": ["AlbertForMaskedLM"], "attention_probs_dropout_prob": 0, "bos_token_id": 2,
                 "classifier_dropout_prob": 0.1, "down_scale_factor": 1, "embedding_size": 128, "eos_token_id": 3,
                 "gap_size": 0, "hidden_act": "gelu_new", "hidden_dropout_prob": 0, "hidden_size": 768,
                 "initializer_range": 0.02, "inner_group_num": 1, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
                 "max_position_embeddings": 512, "model_type": "albert", "net_structure_type": 0,
                 "num_attention_heads": 12, "num_hidden_groups": 1, "num_hidden_layers": 12, "num_memory_blocks": 0,
                 "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30000}
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        assert gb.BertConfig.from_dict(published) == gb.AlbertConfig.preset("base")
        assert gb.BertConfig.from_dict(transformers.AlbertConfig().to_dict()) == \
            gb.AlbertConfig(id2label={0: "LABEL_0", 1: "LABEL_1"})
    assert caplog.text == ""  # no key of either is unknown


@pytest.mark.parametrize("bad, message", [
    (dict(attention_head_size=16), "heads split hidden_size 32 evenly"),
    (dict(num_hidden_groups=5), "num_hidden_groups 5 is more than num_hidden_layers 4"),
    (dict(embedding_size=0), "embedding_size must be a positive integer"),
    (dict(inner_group_num=True), "inner_group_num"),
])
def test_invalid_albert_values(bad, message):
    with pytest.raises(InputError, match=message):
        gb.AlbertConfig(**{**TINY, **bad})


def test_a_config_json_of_the_wrong_type_names_both():
    with pytest.raises(InputError, match="model_type 'gpt2' is not 'bert' or 'albert'"):
        gb.BertConfig.from_dict({"model_type": "gpt2"})
    with pytest.raises(InputError, match="model_type 'bert' is not 'albert'"):
        gb.AlbertConfig.from_dict({"model_type": "bert"})


# ─── capture: E and H, and the shared layers named as such ──────────────────────────────────
def test_shared_layers_are_captured_per_run_with_the_weights_they_share():
    config = gb.AlbertConfig.preset("toy", num_hidden_layers=4, num_hidden_groups=2, attn_implementation="eager")
    model = gb.AlbertForPreTraining(config).eval()
    batch = padded_batch(vocab=config.vocab_size, lengths=(9, 6))
    with torch.no_grad(), Capture(model) as cap:
        out = model(**batch, output_attentions=True)
    E, H = config.embedding_size, config.hidden_size
    assert cap["albert.embeddings.layernorm"].shape[-1] == E and cap["albert.encoder.projection"].shape[-1] == H
    probs = [cap[f"albert.encoder.layer.{r}.attention.probs"] for r in range(4)]
    for a, b in zip(probs, out.bert.attentions):
        assert torch.equal(a, b)
    assert not torch.equal(probs[0], probs[1])  # one set of weights, different activations per layer
    shared_0 = "shared group 0, inner 0 (its weights run in 2 layers)"
    assert cap.shared["albert.encoder.layer.1.attention.probs"] == shared_0
    assert cap.shared["albert.encoder.layer.2.layernorm"] == "shared group 1, inner 0 (its weights run in 2 layers)"
    assert not any("albert_layer_groups" in name for name in cap)  # no record under the storage path
    assert "albert.embeddings.layernorm" not in cap.shared

    cat = {e["name"]: e for e in catalogue(model)}
    queries = [cat[f"albert.encoder.layer.{r}.attention.query_linear"] for r in range(4)]
    assert [q["layer"] for q in queries] == [0, 1, 2, 3]
    assert [q["weight"] for q in queries] == [
        f"albert.encoder.albert_layer_groups.{g}.albert_layers.0.attention.query.weight" for g in (0, 0, 1, 1)]
    assert cat["albert.embeddings.word"]["dims"] == ["token", "embedding"]
    assert cat["albert.encoder.projection"]["dims"] == ["token", "hidden"]
    assert cat["albert.encoder.projection"]["weight"] == "albert.encoder.embedding_hidden_mapping_in.weight"
    assert cat["predictions.logits"]["weight"] == "albert.embeddings.word_embeddings.weight"  # tied, V × E
    assert cat["sop_classifier.logits"]["role"] == "nsp_logits"
    assert cat["albert.pooler.dense"]["weight"] == "albert.pooler.weight"
    assert cat["albert.embeddings.word"]["shared"] is None
    assert set(cat) == set(cap) | {"predictions.softmax", "predictions.argmax", "sop_classifier.softmax"}


def test_trace_shows_e_and_h_and_names_the_shared_layer():
    model = gb.AlbertModel(gb.AlbertConfig.preset("toy"))
    lines: list[str] = []
    trace(model, {"input_ids": torch.tensor([[2, 7, 9, 11, 3]])}, echo=lines.append)
    text = "\n".join(lines)
    assert "EMBEDDING SIZE: 4\nHIDDEN SIZE: 8" in text
    assert "Word Embeddings:\ntorch.Size([1, 5, 4])" in text
    assert "Embeddings Projected to Hidden Size:\ntorch.Size([1, 5, 8])" in text
    assert text.count("(its weights run in 3 layers)") == 3
    assert "ALBERT LAYER 3 · shared group 0, inner 0" in text


# ─── published ALBERT tokenizer directories ─────────────────────────────────────────────────
def _sentencepiece_vocab():
    pieces = ["▁the", "▁cat", "▁sat", "▁on", "▁mat", "s", "▁", "a", "t", "c", "h", "e", "m", "o", "n", "▁dog", ".",
              "!", "▁a", "d", "g", "▁it", "i"]
    specials = [("<pad>", 0.0), ("<unk>", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("[MASK]", 0.0)]
    return specials + [(p, -float(i + 1)) for i, p in enumerate(pieces)]


def test_an_albert_tokenizer_json_is_read_as_transformers_reads_it(tmp_path):
    hf = transformers.AlbertTokenizer(vocab=_sentencepiece_vocab())
    hf.save_pretrained(tmp_path)
    ours = Tokenizer.from_pretrained(tmp_path)
    assert (ours.pad_token_id, ours.unk_token_id, ours.cls_token_id, ours.sep_token_id, ours.mask_token_id) == \
        (0, 1, 2, 3, 4)
    for a, b in [("The cats sat on the mat.", "A dog sat on it!"), ("The cat sat.", None)]:
        batch = ours(a, b)
        assert batch["input_ids"][0].tolist() == hf(a, b)["input_ids"]
    pair = ours("The cat sat.", "A dog.")
    assert pair["token_type_ids"][0].tolist() == [0] * 6 + [1] * 5  # [CLS] ▁the ▁cat ▁sat . [SEP] | ▁a ▁dog . [SEP]…
    # saved again: tokenizer.json and the class transformers knows, no WordPiece vocab.txt
    again = tmp_path / "again"
    ours.save_pretrained(again)
    assert not (again / "vocab.txt").exists()
    assert json.loads((again / "tokenizer_config.json").read_text())["tokenizer_class"] == "AlbertTokenizer"
    reread = transformers.AutoTokenizer.from_pretrained(again)
    assert reread("The cats sat.", "A dog.")["input_ids"] == ours("The cats sat.", "A dog.")["input_ids"][0].tolist()


def test_a_directory_with_only_spiece_model_says_how_to_get_a_tokenizer_json(tmp_path):
    gb.AlbertModel(gb.AlbertConfig(**TINY)).save_pretrained(tmp_path)
    (tmp_path / "spiece.model").write_bytes(b"\x0a\x00")
    with pytest.raises(MissingError, match=r"only spiece\.model.*pip install sentencepiece protobuf.*"
                                           r"AutoTokenizer\.from_pretrained.*save_pretrained"):
        Tokenizer.from_pretrained(tmp_path)


def test_a_resaved_albert_keeps_its_sentencepiece_model(tmp_path):
    source = tmp_path / "published"
    gb.AlbertModel(gb.AlbertConfig(**TINY)).save_pretrained(source)
    transformers.AlbertTokenizer(vocab=_sentencepiece_vocab()).save_pretrained(source)
    (source / "spiece.model").write_bytes(b"sentencepiece bytes")
    load_model(source).save_pretrained(tmp_path / "resaved")
    assert (tmp_path / "resaved" / "spiece.model").read_bytes() == b"sentencepiece bytes"
    assert Tokenizer.from_pretrained(tmp_path / "resaved")("The cat.")["input_ids"].tolist() == [[2, 5, 6, 21, 3]]
