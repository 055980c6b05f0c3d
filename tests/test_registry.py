"""The registry (registry.py): one record per architecture, heads that declare their kind, loading by role."""
from __future__ import annotations

import logging

import pytest

from glassbert import registry
from glassbert.config import ARCH_NAMES, CONFIGS
from glassbert.errors import InputError
from glassbert.heads import BertForMaskedLM, BertForNextSentencePrediction, BertForSequenceClassification
from glassbert.model import BertModel
from glassbert.pretrained import HEAD_KINDS
from glassbert.registry import ARCHITECTURES, ROLES, TASK_MODELS, for_model_type, load_as_with_report, role_of

# what each role's class carries: the kinds a head of that role declares
ROLE_HEADS = {"base": set(), "pretraining": {"mlm", "nsp", "sop"}, "mlm": {"mlm"}, "pair": {"nsp", "sop"},
              "classifier": {"classifier"}, "tagger": {"tagger"}, "span": {"span"}}


def test_the_light_list_of_names_and_the_records_agree():
    assert tuple(ARCHITECTURES) == ARCH_NAMES == tuple(CONFIGS)
    for name, arch in ARCHITECTURES.items():
        assert arch.config_class is CONFIGS[name]
        assert arch.config_class.model_type == name


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_every_class_of_a_record_is_of_its_architecture_and_declares_its_heads(name):
    arch = ARCHITECTURES[name]
    assert {"base", "pretraining"} <= set(arch.classes) <= set(ROLES)
    assert arch.pair_task in arch.pair_tasks and set(arch.pair_tasks) <= set(registry.PAIR_TASKS)
    assert arch.default_preset in arch.presets
    for role, cls in arch.classes.items():
        assert cls.config_class is arch.config_class, cls.__name__
        assert set(cls.heads) <= set(HEAD_KINDS), cls.__name__
        assert set(cls.heads) <= ROLE_HEADS[role] or role == "pretraining", cls.__name__
        assert role_of(cls) == role
        assert TASK_MODELS[cls.__name__] is cls
    # the pretraining model's pair head is the record's pair task; its other head is the MLM
    assert set(arch.pretraining.heads) == {"mlm", arch.pair_task}


def test_a_class_has_its_counterpart_in_every_architecture_that_fills_its_role():
    assert for_model_type(BertForMaskedLM, "albert").__name__ == "AlbertForMaskedLM"
    assert for_model_type(for_model_type(BertModel, "albert"), "bert") is BertModel
    assert for_model_type(BertForSequenceClassification, "bert") is BertForSequenceClassification
    with pytest.raises(InputError, match="BertForNextSentencePrediction has no ALBERT counterpart"):
        for_model_type(BertForNextSentencePrediction, "albert")
    with pytest.raises(InputError, match="model_type 'gpt2': choose one of bert, albert"):
        for_model_type(BertModel, "gpt2")


def test_a_new_head_is_in_the_load_report_and_not_logged(tmp_path, caplog):
    from glassbert.config import BertConfig
    cfg = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertModel(cfg).save_pretrained(tmp_path / "bare")
    with caplog.at_level(logging.INFO, logger="glassbert"):
        model, report = load_as_with_report(tmp_path / "bare", BertForSequenceClassification)
    assert caplog.records == []
    assert set(report.newly_initialized) == {"classifier.weight", "classifier.bias"}
    assert model.load_report is report
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        BertForSequenceClassification.from_pretrained(tmp_path / "bare")  # the public load says so, as transformers
    assert "newly initialized" in caplog.text and "classifier.weight" in caplog.text


def test_unknown_architecture_names_the_choices():
    with pytest.raises(InputError, match="--arch 'gpt2': choose one of bert, albert"):
        registry.architecture("gpt2")


def _tiny_bert(directory, cls=BertModel):
    from glassbert.config import BertConfig
    cfg = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    return cls(cfg).save_pretrained(directory)


def test_load_as_logs_what_load_as_with_report_returns(tmp_path, caplog):
    """load_as is load_as_with_report and the lines from_pretrained logs: a new head said once, as a warning."""
    _tiny_bert(tmp_path / "bare")
    with caplog.at_level(logging.INFO, logger="glassbert"):
        model = registry.load_as(tmp_path / "bare", BertForSequenceClassification)
    assert type(model) is BertForSequenceClassification
    assert set(model.load_report.newly_initialized) == {"classifier.weight", "classifier.bias"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "BertForSequenceClassification: 2 weights" in warnings[0].getMessage()
    caplog.clear()
    _tiny_bert(tmp_path / "mlm", BertForMaskedLM)
    with caplog.at_level(logging.INFO, logger="glassbert"):
        registry.load_as(tmp_path / "mlm")  # the bare encoder: the MLM head's tensors are ignored, said as info
    assert [r.getMessage()[:18] for r in caplog.records if r.levelno == logging.INFO] == ["BertModel: ignored"]


def test_load_model_reads_config_json_once_and_builds_the_class_it_names(tmp_path, monkeypatch):
    from pathlib import Path
    _tiny_bert(tmp_path / "clf", BertForSequenceClassification)
    reads: list[str] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or read_bytes(self))
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self.name) or read_bytes(self).decode())
    assert type(registry.load_model(tmp_path / "clf")) is BertForSequenceClassification
    assert reads.count("config.json") == 2  # load_model's, to choose the class; from_pretrained's, to build it


def test_load_model_names_a_missing_or_broken_config_json(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json in .*empty: not a model directory"):
        registry.load_model(tmp_path / "empty")
    broken = _tiny_bert(tmp_path / "broken")
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": ', encoding="utf-8")
    with pytest.raises(InputError, match=r"broken.config\.json line 1 column \d+: invalid JSON"):
        registry.load_model(broken)
    (broken / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    with pytest.raises(InputError, match=r"config\.json: model_type 'gpt2' is not 'bert' or 'albert'"):
        registry.load_model(broken)
