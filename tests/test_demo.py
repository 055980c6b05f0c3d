"""`glassbert demo`: the six-pair toy BERT of the article "Exploring BERT" learns every masked word and IsNext label."""
from __future__ import annotations

import json

import pytest
import torch

import glassbert as gb
from glassbert.demo import ARTICLE_MASKS, PAIRS, build_vocab, make_batch, run_demo
from glassbert.errors import InputError
from glassbert.recording import load_manifest


@pytest.mark.slow
def test_demo_learns_every_sample_and_leaves_a_run(tmp_path):
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", progress=False, echo=lines.append)
    assert result.all_correct, "\n".join(lines)
    text = "\n".join(lines)
    assert "6/6 samples fully correct" in text and "glassbert explore" in text
    run = tmp_path / "demo"
    for name in ("config.json", "vocab.txt", "model.safetensors", "metrics.jsonl", "metrics.png", "demo.json"):
        assert (run / name).is_file(), name
    # the run dir is a real checkpoint: reload it and get the same predictions
    model = gb.BertForPreTraining.from_pretrained(run)
    tok = gb.Tokenizer.from_pretrained(run)
    batch = make_batch(tok, seed=5)
    with torch.no_grad():
        out = model(**batch)
    assert (out.prediction_logits.argmax(-1) == batch["labels"].reshape(-1)[out.masked_index]).all()
    assert (out.seq_relationship_logits.argmax(-1) == batch["next_sentence_label"]).all()
    # the explorer recording spans training: first and last snapshots, with predictions
    manifest = load_manifest(run)
    epochs = [s["epoch"] for s in manifest["snapshots"]]
    assert epochs[0] == 0 and epochs[-1] == 3000
    summary = json.loads((run / "demo.json").read_text())["summary"]
    assert [r["actual"] for r in summary] == [list(words) for words in ARTICLE_MASKS]  # the article's masks
    assert [r["predicted"] for r in summary] == [list(words) for words in ARTICLE_MASKS]


def test_toy_setup_matches_the_article():
    tok = gb.Tokenizer.from_vocab(build_vocab())
    batch = make_batch(tok, seed=5)
    assert batch["input_ids"].shape == (6, 14)  # max length 14
    masked = (batch["labels"] != -100).sum(1)
    assert masked.tolist() == [2] * 6  # up to two words per pair
    assert (batch["input_ids"][batch["labels"] != -100] == tok.mask_token_id).all()
    # figure 6 of the article: sample 0 masks "cat" and "chase"
    assert tok.convert_ids_to_tokens(batch["input_ids"][0]) == \
        "[CLS] the [MASK] chased the mouse [SEP] it was a fast [MASK] [SEP] [PAD]".split()
    assert tok.convert_ids_to_tokens(batch["labels"][0][batch["labels"][0] != -100]) == ["cat", "chase"]
    assert tok.convert_ids_to_tokens(batch["input_ids"][3, :10]) == \
        "[CLS] the [MASK] ran quickly [SEP] it was too [MASK]".split()
    assert batch["next_sentence_label"].tolist() == [0 if n else 1 for _, _, n in PAIRS]
    cfg = gb.BertConfig.preset("toy", vocab_size=tok.vocab_size)
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.attention_head_size, cfg.intermediate_size) == (7, 5, 4, 28)


def test_random_masks_stay_an_option():
    tok = gb.Tokenizer.from_vocab(build_vocab())
    article, random = make_batch(tok, seed=5), make_batch(tok, seed=5, masks="random")
    assert not torch.equal(article["labels"], random["labels"])
    assert torch.equal(random["labels"], make_batch(tok, seed=5, masks="random")["labels"])  # the seed decides
    assert ((random["labels"] != -100).sum(1) <= 2).all()
    assert tok.convert_ids_to_tokens(random["input_ids"][0, :7]) == ["[CLS]", "the", "cat", "chased", "the", "[MASK]", "[SEP]"]
    with pytest.raises(InputError, match="--masks 'some': choose one of article, random"):
        make_batch(tok, seed=5, masks="some")
