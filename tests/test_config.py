from __future__ import annotations

import json
import logging
import re

import pytest

import glassbert as gb
from glassbert.config import PRESETS
from glassbert.errors import InputError
from glassbert.params import parameter_counts


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
        parameter_counts(gb.BertConfig.preset("tiny", vocab_size=1000)).model


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


# ─── config.json from a user: wrong types and broken files name the file and the key ─────────
def _write_config(tmp_path, **changes):
    data = {**gb.BertConfig.preset("toy").to_dict(), **changes}
    (tmp_path / "config.json").write_text(json.dumps(data, indent=2))
    return tmp_path / "config.json"


@pytest.mark.parametrize("key, value, message", [
    ("hidden_size", "big", r"key 'hidden_size' is \"big\" \(a string\), expected an integer"),
    ("num_hidden_layers", True, r"key 'num_hidden_layers' is true \(a boolean\), expected an integer"),
    ("vocab_size", 64.0, r"key 'vocab_size' is 64\.0 \(a number\), expected an integer"),
    ("intermediate_size", [28], r"key 'intermediate_size' is \[28\] \(a list\), expected an integer or null"),
    ("hidden_dropout_prob", "0.1", r"key 'hidden_dropout_prob' is \"0\.1\" \(a string\), expected a number"),
    ("layer_norm_eps", None, r"key 'layer_norm_eps' is null, expected a number"),
    ("hidden_act", 3, r"key 'hidden_act' is 3 \(an integer\), expected a string"),
    ("id2label", ["neg", "pos"], r"key 'id2label' is \[\"neg\", \"pos\"\] \(a list\), expected an object of label ids"),
    ("id2label", {"a": "neg"}, r"key 'id2label' is \{\"a\": \"neg\"\} \(an object\), expected an object of label ids"),
])
def test_config_json_field_types(tmp_path, key, value, message):
    path = _write_config(tmp_path, **{key: value})
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: {message}"):
        gb.BertConfig.load(tmp_path)


def test_config_json_values_and_direct_construction_name_their_source(tmp_path):
    path = _write_config(tmp_path, hidden_dropout_prob=1.5)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: hidden_dropout_prob must be in \[0, 1\)"):
        gb.BertConfig.load(tmp_path)
    path = _write_config(tmp_path, id2label={"0": "neg", "2": "pos"})
    with pytest.raises(InputError, match=r"config\.json: id2label must number the labels 0 to 1, got ids \[0, 2\]"):
        gb.BertConfig.load(tmp_path)
    with pytest.raises(InputError, match=r"^config: key 'hidden_size' is \"big\" \(a string\), expected an integer"):
        gb.BertConfig(hidden_size="big")
    assert gb.BertConfig.load(_write_config(tmp_path, classifier_dropout=None)).classifier_dropout is None
    assert gb.BertConfig.load(_write_config(tmp_path, hidden_dropout_prob=0)).hidden_dropout_prob == 0


def test_config_json_broken_files_name_file_and_line(tmp_path):
    (tmp_path / "config.json").write_text('{\n  "hidden_size": 7,\n  "vocab_size": 64,,\n}')
    with pytest.raises(InputError, match=r"config\.json line 3 column 20: invalid JSON \(Expecting"):
        gb.BertConfig.load(tmp_path)
    (tmp_path / "config.json").write_bytes(b'{\n  "hidden_act": "gel\xfc"\n}')
    with pytest.raises(InputError, match=r"config\.json line 2: byte 0xfc at column 21 is not UTF-8"):
        gb.BertConfig.load(tmp_path)
    (tmp_path / "config.json").write_text('["not", "an", "object"]')
    with pytest.raises(InputError, match=r"config\.json: expected a JSON object \{\.\.\.\}, got list"):
        gb.BertConfig.load(tmp_path)


def test_unknown_config_keys_are_logged_once_without_source_lines(tmp_path, caplog):
    path = _write_config(tmp_path, mystery=1)
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        gb.BertConfig.load(tmp_path)
    assert [r.getMessage() for r in caplog.records] == [f"{path}: ignoring unknown config keys ['mystery']"]
