"""Pretraining BERT on your own text (MLM + NSP or SOP), the original recipe:

    config.py      PretrainingConfig (how pairs are cut and tokens masked), TokenizerLike
    instances.py   corpus → documents → sentence-pair instances → packed, un-masked items
    masking.py     dynamic 80/10/10 (whole-word) masking and the collator that pads and masks each batch
    report.py      the end-of-run report: held-out MLM/NSP figures and fill-mask on held-out text
    job.py         PretrainArgs and the `glassbert pretrain` job: datasets, model, Trainer, run dir, resume
"""
import sys
import types

from .config import PretrainingConfig, TokenizerLike
from .instances import Instance, PretrainingDataset, build_instances, tokenize_documents
from .job import PretrainArgs, build_datasets, pretrain, pretraining_metrics, resume_pretraining, split_documents
from .masking import MaskingVocab, PretrainingCollator, mask_tokens
from .call import pretrain_with


class _PretrainPackage(types.ModuleType):
    """This package, callable: ``glassbert.pretrain(corpus=…, vocab=…, out=…, steps=…)`` is
    :func:`glassbert.pretrain.call.pretrain_with` (``glassbert.pretrain`` names the package once it is imported)."""

    def __call__(self, *args, **kwargs):
        return pretrain_with(*args, **kwargs)


sys.modules[__name__].__class__ = _PretrainPackage

__all__ = [
    "PretrainingConfig", "TokenizerLike", "Instance", "PretrainingDataset", "build_instances", "tokenize_documents",
    "MaskingVocab", "PretrainingCollator", "mask_tokens",
    "PretrainArgs", "pretrain", "pretrain_with", "resume_pretraining", "pretraining_metrics", "split_documents", "build_datasets",
]
