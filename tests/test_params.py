"""Parameter counts from a config alone equal those of the built models, component by component."""
from __future__ import annotations

import pytest
import torch

import glassbert as gb
from glassbert.config import ALBERT_PRESETS, PRESETS
from glassbert.params import format_table, parameter_counts

CASES = [(gb.BertConfig, name) for name in PRESETS] + [(gb.AlbertConfig, name) for name in ALBERT_PRESETS]


def by_component(model: torch.nn.Module, prefix: str) -> dict[str, int]:
    """numel of the model's distinct parameters, grouped as parameter_counts groups them."""
    sums = dict.fromkeys(("embeddings", "encoder", "pooler", "heads"), 0)
    for name, p in model.named_parameters():  # each tensor once: the tied decoder is the word table
        part = name.removeprefix(prefix).split(".")[0]
        sums[part if part in ("embeddings", "encoder", "pooler") else "heads"] += p.numel()
    return sums


@pytest.mark.parametrize("config_class, preset", CASES)
def test_counts_equal_the_built_models(config_class, preset):
    config = config_class.preset(preset)
    pretraining = gb.AlbertForPreTraining if config_class is gb.AlbertConfig else gb.BertForPreTraining
    bare = gb.AlbertModel if config_class is gb.AlbertConfig else gb.BertModel
    with torch.device("meta"):  # no memory, no time: base and large too
        model, backbone = pretraining(config), bare(config)
    counts = parameter_counts(config)
    assert by_component(model, f"{config.model_type}.") == {
        "embeddings": counts.embeddings, "encoder": counts.encoder, "pooler": counts.pooler, "heads": counts.heads}
    assert counts.total == sum(p.numel() for p in model.parameters()) == model.num_parameters()
    assert counts.model == sum(p.numel() for p in backbone.parameters()) == backbone.num_parameters()


def test_albert_is_the_small_one():
    """The point of ALBERT: base shrinks from BERT's 110 M to 12 M (the paper's figures), large from 335 M to 18 M."""
    bert, albert = parameter_counts(gb.BertConfig.preset("base")), parameter_counts(gb.AlbertConfig.preset("base"))
    assert round(bert.total / 1e6) == 110 and round(albert.total / 1e6) == 12
    assert round(parameter_counts(gb.AlbertConfig.preset("large")).total / 1e6) == 18
    assert albert.embeddings < bert.embeddings / 5  # V·E with E = 128, not V·H
    assert (albert.layers_stored, albert.layers_run) == (1, 12) and bert.layers_stored == 12
    table = format_table([("bert base", gb.BertConfig.preset("base")), ("albert base", gb.AlbertConfig.preset("base"))])
    header, first, second = table.splitlines()
    assert header.split() == ["model", "embeddings", "encoder", "pooler", "heads", "total",
                              "layers", "stored", "/", "run"]
    assert first.startswith("bert base") and "110.1 M" in first and "12 / 12" in first
    assert second.startswith("albert base") and "11.8 M" in second and "1 / 12" in second


def test_the_params_command_sets_bert_beside_albert():
    from click.testing import CliRunner

    from glassbert.cli import main
    result = CliRunner().invoke(main, ["params"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert list(rows) == ["bert-base", "albert-base", "bert-large", "albert-large"]
    assert rows["bert-base"][-5:] == ["110.1", "M", "12", "/", "12"]      # BERT-base: 110 M
    assert rows["albert-base"][-5:] == ["11.8", "M", "1", "/", "12"]      # ALBERT-base: 12 M, one layer run 12×
    small = CliRunner().invoke(main, ["params", "albert-tiny", "--vocab-size", "100"])
    assert small.exit_code == 0 and small.output.splitlines()[1].startswith("albert-tiny")
    bad = CliRunner().invoke(main, ["params", "albert-mini"])
    assert bad.exit_code != 0 and "albert has no preset 'mini'" in bad.output
