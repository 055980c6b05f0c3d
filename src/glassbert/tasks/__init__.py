"""Fine-tuning, one module per task. What `glassbert finetune` and `glassbert classify` run.

    classification.py  CSV/TSV/JSONL texts (and pairs) → labels: reader, encoding, accuracy/macro-F1, confusion
    tagging.py         CoNLL → BIO tags on each word's first piece: reader, alignment, entity F1
    qa.py              SQuAD v1.1 → [CLS] Q [SEP] C [SEP] windows: reader, features, n-best span decoding, EM/F1
    common.py          what the tasks share: encoded datasets, the task model from a model dir, pooling, freezing,
                       batched inference, TaskData
    job.py             the `finetune` job: FinetuneArgs → Trainer → out/ (a model dir transformers loads)
    classifier.py      `classify`: apply a fine-tuned classifier to texts or a file (CSV of predictions)
    tagger.py          `tag`: apply a fine-tuned tagger to raw text: entities with character spans (text, CoNLL, JSONL)
    answerer.py        `answer`: apply a fine-tuned QA model: answer spans, scores, n-best; SQuAD JSON in and out

Readers keep the line of everything they read, so an error names the file and the line.
This module holds only the names the CLI needs (no torch import); the rest loads on first use:
``from glassbert.tasks import finetune, FinetuneArgs, classify``.
"""
from __future__ import annotations

from typing import Any

# The fine-tuning tasks: `--task NAME` → the module that implements the task protocol (tasks/common.Task).
# Adding a task: its module, and one line here.
TASK_MODULES = {"classify": "classification", "token": "tagging", "qa": "qa"}
TASK_NAMES = tuple(TASK_MODULES)                    # the `--task` choices
FREEZE_MODES = ("none", "embeddings", "encoder")    # or a number N: the embeddings and the first N layers
TAG_FORMATS = ("text", "conll", "jsonl")            # what `glassbert tag` writes

_LAZY = {"finetune": "job", "FinetuneArgs": "job", "TASKS": "job", "build_task_model": "job",
         "classify": "classifier", "write_predictions": "classifier", "format_table": "classifier",
         "tag": "tagger", "answer": "answerer"}


def task_module(name: str) -> Any:
    """The module of task ``name`` (imported on first use: it loads torch)."""
    from importlib import import_module
    if name not in TASK_MODULES:
        from ..errors import InputError
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(TASK_MODULES)}")
    return import_module(f"{__name__}.{TASK_MODULES[name]}")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASK_MODULES", "task_module", "TASK_NAMES", "FREEZE_MODES", "TAG_FORMATS", *_LAZY]
