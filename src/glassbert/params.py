"""Parameter counts by component, from a config alone: the arithmetic behind ALBERT's point.

With V words, P positions, S segments, embedding width E (= H in BERT), hidden H, all heads A, FFN I, L layers:

    embeddings  (V + P + S)·E + 2E        the three tables and their LayerNorm: ALBERT's E ≪ H shrinks V·E
    encoder     layers stored × layer     BERT stores L layers; ALBERT num_hidden_groups × inner_group_num
                + E·H + H (ALBERT)        ALBERT's projection E → H (embedding_hidden_mapping_in)
                layer = 3(H·A + A) + A·H + H  [Q, K, V, output]  + H·I + I + I·H + H  [FFN]  + 2·2H  [LayerNorms]
    pooler      H·H + H
    heads       H·E + E + 2E + V          MLM transform (H → E), its LayerNorm, the decoder's bias (its V × E
                                          matrix is the word table, tied)
                + 2H + 2                  NSP (BERT) / SOP (ALBERT)

``counts.model`` is the bare BertModel / AlbertModel, ``counts.total`` the pretraining model (…ForPreTraining).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import CONFIGS, BertConfig
from .errors import GlassbertError, InputError
from .modeldir import resolve_model_path


@dataclass(frozen=True)
class ParameterCounts:
    embeddings: int       # word + position + segment tables, LayerNorm
    encoder: int          # the stored layers (+ ALBERT's E → H projection)
    pooler: int
    heads: int            # MLM transform + decoder bias, NSP / SOP
    layers_stored: int    # layer weight sets held
    layers_run: int       # layers a forward pass runs

    @property
    def model(self) -> int:
        """The bare model: embeddings + encoder + pooler."""
        return self.embeddings + self.encoder + self.pooler

    @property
    def total(self) -> int:
        """The pretraining model: the bare model + MLM and NSP/SOP heads."""
        return self.model + self.heads


def parameter_counts(config: BertConfig) -> ParameterCounts:
    """Parameters of the model ``config`` describes (a BertConfig or an AlbertConfig), by component."""
    V, P, S = config.vocab_size, config.max_position_embeddings, config.type_vocab_size
    E, H, A, I = config.embedding_size, config.hidden_size, config.all_head_size, config.intermediate_size
    layer = 3 * (H * A + A) + (A * H + H) + (H * I + I) + (I * H + H) + 2 * (2 * H)
    stored = getattr(config, "num_hidden_groups", config.num_hidden_layers) * getattr(config, "inner_group_num", 1)
    projection = E * H + H if config.model_type == "albert" else 0
    return ParameterCounts(
        embeddings=(V + P + S) * E + 2 * E,
        encoder=projection + stored * layer,
        pooler=H * H + H,
        heads=(H * E + E) + 2 * E + V + (2 * H + 2),
        layers_stored=stored,
        layers_run=config.num_hidden_layers * getattr(config, "inner_group_num", 1),
    )


def format_table(configs: Sequence[tuple[str, BertConfig]]) -> str:
    """A text table of ``(name, config)`` rows: parameters by component, in millions when large."""
    header = ("model", "embeddings", "encoder", "pooler", "heads", "total", "layers stored / run")
    rows = [header]
    for name, config in configs:
        c = parameter_counts(config)
        rows.append((name, *(_amount(n) for n in (c.embeddings, c.encoder, c.pooler, c.heads, c.total)),
                     f"{c.layers_stored} / {c.layers_run}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines)


def named_configs(names: Sequence[str], vocab_size: int | None = None) -> list[tuple[str, BertConfig]]:
    """(label, config) for each of ``names``: bert-PRESET, albert-PRESET, a bare PRESET (BERT's and
    ALBERT's of that name), or a model directory / alias; ``vocab_size`` replaces each one's vocabulary size."""
    sizes = {} if vocab_size is None else {"vocab_size": vocab_size}
    found: list[tuple[str, BertConfig]] = []
    for name in names:
        arch, _, preset = name.partition("-") if name.split("-")[0] in CONFIGS else ("", "", name)
        kinds = [(a, c) for a, c in CONFIGS.items() if arch in ("", a)]
        matched = [(f"{a}-{preset}", c.preset(preset, **sizes)) for a, c in kinds if preset in c.presets]
        if matched:
            found += matched
            continue
        if arch:
            raise InputError(f"{name}: {arch} has no preset {preset!r} (its presets: {', '.join(CONFIGS[arch].presets)})")
        try:
            config = BertConfig.load(resolve_model_path(name))
        except GlassbertError:
            every = "; ".join(f"{a.upper()}: {', '.join(c.presets)}" for a, c in CONFIGS.items())
            raise InputError(f"{name}: not a preset ({every}; or {' / '.join(f'{a}-NAME' for a in CONFIGS)}) "
                             "nor a model directory") from None
        found.append((name, config.replace(**sizes) if sizes else config))
    return found


def _amount(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1_000_000 else f"{n:,}"


__all__ = ["ParameterCounts", "parameter_counts", "format_table", "named_configs"]
