"""The `glassbert` command: thin wrappers, one library function each.

MODEL arguments take a model directory (transformers-style or our own run) or an alias: `minilm`.
The commands live by job (models, training, inference, viewing); ``base`` holds the group and shared options.
"""
from __future__ import annotations

from . import inference, models, search, training, viewing  # noqa: F401  (each registers its commands on main)
from .base import USER_ERRORS, main

__all__ = ["main", "USER_ERRORS"]
