from __future__ import annotations

import json

import pytest

import glassbert as gb
from glassbert.config import PRESETS


def test_presets_as_issue_specifies():
    sizes = {name: (c.num_hidden_layers, c.hidden_size, c.num_attention_heads)
             for name, c in ((n, gb.BertConfig.preset(n)) for n in PRESETS)}
    assert sizes == {"toy": (2, 7, 5), "tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8),
                     "medium": (8, 512, 8), "base": (12, 768, 12), "large": (24, 1024, 16)}
    toy = gb.BertConfig.preset("toy")
    assert (toy.attention_head_size, toy.intermediate_size, toy.max_position_embeddings) == (4, 28, 14)
    base = gb.BertConfig.preset("base")
    assert base.intermediate_size == 3072 and base.attention_head_size == 64
    assert gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=1000)).num_parameters() == \
        gb.BertConfig.preset("tiny", vocab_size=1000).num_parameters()


def test_json_round_trip_and_transformers_keys(tmp_path):
    cfg = gb.BertConfig.preset("toy", id2label={0: "no", 1: "yes"})
    cfg.save(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["attention_head_size"] == 4 and data["model_type"] == "bert"
    assert data["label2id"] == {"no": 0, "yes": 1}
    assert gb.BertConfig.load(tmp_path) == cfg


@pytest.mark.parametrize("bad, message", [
    (dict(hidden_size=0), "hidden_size must be a positive integer"),
    (dict(hidden_size=10, num_attention_heads=3), "not divisible by num_attention_heads"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob must be in"),
    (dict(hidden_act="swish2"), "hidden_act 'swish2'"),
    (dict(attn_implementation="flash"), "attn_implementation 'flash'"),
    (dict(pad_token_id=99999), "pad_token_id 99999 outside the vocabulary"),
    (dict(classifier_pooling="max"), "classifier_pooling 'max'"),
])
def test_invalid_values(bad, message):
    with pytest.raises(ValueError, match=message):
        gb.BertConfig(**bad)


def test_unknown_preset_and_model_type():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        gb.BertConfig.preset("huge")
    with pytest.raises(ValueError, match="model_type 'gpt2' is not 'bert'"):
        gb.BertConfig.from_dict({"model_type": "gpt2"})
