"""`glassbert vocab train`: a WordPiece vocabulary learned from a corpus (vocab.txt + tokenizer.json)."""
from __future__ import annotations

from pathlib import Path

from .corpus import read_texts
from .errors import InputError
from .progress import on_terminal
from .runfiles import check_target_dir, replace_dir
from .tokenizer import Tokenizer


def train_vocab(corpus: str | Path, out: str | Path, size: int = 8000, cased: bool = False, min_frequency: int = 2,
                text_column: str | None = None, overwrite: bool = False) -> tuple[Tokenizer, list[str]]:
    """Learn a vocabulary of ``size`` word pieces from the documents of ``corpus`` (a file or folder: see
    glassbert.corpus) and save it in ``out`` (refused if it holds files, unless ``overwrite``); ``cased`` keeps
    case and accents. Returns the tokenizer and the documents it learned from."""
    check_target_dir(out, overwrite=overwrite, reads=(("--corpus", corpus),))
    texts = read_texts(corpus, text_column=text_column)
    if not texts:
        raise InputError(f"--corpus {corpus}: no text found")
    tok = Tokenizer.train(texts, vocab_size=size, lowercase=not cased, min_frequency=min_frequency, files=False,
                          show_progress=on_terminal())  # the tokenizers library's bar redraws with \r: a terminal only
    tok.save_pretrained(replace_dir(out))
    return tok, texts


__all__ = ["train_vocab"]
