"""What every model class shares: its config class, the heads it carries, BERT's init, and loading and saving a
transformers-style model folder (through modeldir.py, which knows the files)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from .config import BertConfig

log = logging.getLogger("glassbert")

# The kinds of head a model can carry: masked words, the sentence-pair head (BERT's NextSentence, ALBERT's
# SentenceOrder), a sequence classifier, a token tagger, an answer-span head.
HEAD_KINDS = ("mlm", "nsp", "sop", "classifier", "tagger", "span")


class BertPreTrainedModel(nn.Module):
    """Shared by BertModel and the task models: init, from_pretrained, save_pretrained."""

    base_model_prefix = "bert"
    config_class = BertConfig
    # The heads this class carries on its encoder, each one of HEAD_KINDS: what explain, serve, recording and the
    # tasks ask of a model (`"mlm" in model.heads`), instead of reading its class name or its outputs.
    heads: tuple[str, ...] = ()

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, self.config_class) or config.model_type != self.config_class.model_type:
            raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        # The directory from_pretrained read (None: built from a config). save_pretrained with no
        # tokenizer copies that directory's tokenizer files, so a re-saved model stays complete.
        self.pretrained_dir: Path | None = None

    def init_weights(self) -> None:
        """normal(0, 0.02) for matrices and embeddings, zero biases, LayerNorm (1, 0); then tie."""
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
                if m.padding_idx is not None:
                    with torch.no_grad():
                        m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Task models with an MLM decoder share it with the word embeddings."""

    @classmethod
    def from_pretrained(cls, path: str | Path, **config_overrides):
        """Load a transformers-style directory (config.json + model.safetensors | pytorch_model.bin). What the
        checkpoint lacked or held beyond this model is in ``model.load_report``; new weights are logged, as
        transformers does."""
        from .modeldir import load_pretrained
        model, report = load_pretrained(cls, path, **config_overrides)
        model.load_report = report
        log_load_report(cls.__name__, report)
        return model

    def save_pretrained(self, directory: str | Path, tokenizer=None, *, sentence_transformers: bool = False,
                        pooling: str = "mean", normalize: bool = True) -> Path:
        """Write config.json + model.safetensors that transformers loads as is, and the tokenizer:
        ``tokenizer``'s files when given, else those of ``pretrained_dir`` (the directory this model
        was loaded from), if any. ``sentence_transformers=True`` also writes the sentence-transformers layout
        (:func:`glassbert.modeldir.write_sentence_transformers`): ``SentenceTransformer(directory)`` then gives
        the vectors of ``Embedder(directory).encode(texts, pooling=pooling, normalize=normalize)``."""
        from .modeldir import check_sentence_transformers, save_pretrained, write_sentence_transformers
        from .tokenizer import Tokenizer
        if sentence_transformers:  # refused before anything is written
            check_sentence_transformers(self, pooling, tokenizer)
        written = save_pretrained(self, directory, tokenizer)
        if sentence_transformers:
            max_length = Tokenizer.from_pretrained(written).model_max_length
            write_sentence_transformers(self, written, pooling, normalize, max_length)
        return written

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    @property
    def base_model(self) -> "BertPreTrainedModel":
        """The encoder under a task model's heads (``model.bert`` | ``model.albert``); a bare encoder itself."""
        prefix = self.base_model_prefix
        return getattr(self, prefix) if prefix and hasattr(self, prefix) else self

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The word-piece table (V, H; ALBERT's V, E) of the base model."""
        return self.base_model.embeddings.word_embeddings


def log_load_report(owner: str, report) -> None:
    """What loading a checkpoint logs, as transformers does: new weights (a warning), ignored tensors (info)."""
    for line in report.warnings(owner):
        log.warning("%s", line)
    if report.ignored:
        log.info("%s: ignored %d checkpoint weights not used by this model: %s", owner,
                 len(report.ignored), ", ".join(report.ignored[:8]))


__all__ = ["BertPreTrainedModel", "HEAD_KINDS", "log_load_report"]
