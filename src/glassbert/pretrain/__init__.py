"""Pretraining BERT on your own text (MLM + NSP or SOP), the original recipe:

    config.py      PretrainingConfig (how pairs are cut and tokens masked), TokenizerLike
    instances.py   corpus → documents → sentence-pair instances → packed, un-masked items
    masking.py     dynamic 80/10/10 (whole-word) masking and the collator that pads and masks each batch
    report.py      the end-of-run report: held-out MLM/NSP figures and fill-mask on held-out text
    job.py         PretrainArgs and the `glassbert pretrain` job: datasets, model, Trainer, run dir, resume
"""

from .config import PretrainingConfig, TokenizerLike
from .instances import Instance, PretrainingDataset, build_instances, tokenize_documents
from .job import PretrainArgs, build_datasets, pretrain, pretraining_metrics, resume_pretraining, split_documents
from .masking import MaskingVocab, PretrainingCollator, mask_tokens

__all__ = [
    "PretrainingConfig", "TokenizerLike", "Instance", "PretrainingDataset", "build_instances", "tokenize_documents",
    "MaskingVocab", "PretrainingCollator", "mask_tokens",
    "PretrainArgs", "pretrain", "resume_pretraining", "pretraining_metrics", "split_documents", "build_datasets",
]
