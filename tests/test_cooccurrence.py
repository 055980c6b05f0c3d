"""--init-embeddings ppmi: the corpus's co-occurrence counts, their PPMI, the SVD vectors and where a run uses them."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from glassbert.cli import main
from glassbert.pretrain.cooccurrence import TARGET_STD, cooccurrence, ppmi, ppmi_embeddings

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"


def test_counts_are_symmetric_weighted_by_distance_and_cross_sentences() -> None:
    # one document of two sentences, read as the run 1 2 3 | 4; window 2
    C = cooccurrence([[[1, 2, 3], [4]]], vocab_size=6, window=2).to_dense()
    expected = torch.zeros(6, 6, dtype=torch.float64)
    for a, b, w in [(1, 2, 1.0), (2, 3, 1.0), (3, 4, 1.0), (1, 3, 0.5), (2, 4, 0.5)]:
        expected[a, b] = expected[b, a] = w
    assert torch.equal(C, expected)
    # documents are counted apart, and repeats add up (across the chunks the counts are summed in)
    C2 = cooccurrence([[[1, 2]], [[1, 2]], [[2, 5]]], vocab_size=6, window=2).to_dense()
    assert C2[1, 2] == 2 and C2[2, 5] == 1 and C2[1, 5] == 0


def test_counts_summed_over_chunks_equal_one_pass(monkeypatch) -> None:
    rng = random.Random(0)
    docs = [[[rng.randrange(1, 30) for _ in range(rng.randint(1, 12))] for _ in range(3)] for _ in range(40)]
    whole = cooccurrence(docs, 30).to_dense()
    monkeypatch.setattr("glassbert.pretrain.cooccurrence.CHUNK_PAIRS", 7)  # flush after almost every document
    assert torch.allclose(cooccurrence(docs, 30).to_dense(), whole, rtol=0, atol=1e-12)


def test_ppmi_is_the_formula() -> None:
    """max(0, log(x · Σ_c c^α / (row(w) · col(c)^α))) on the nonzero counts, against a dense computation."""
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 4, (7, 7), generator=g).double()
    counts = counts + counts.T
    total = counts.sum()
    row = counts.sum(1, keepdim=True)
    col = counts.sum(0, keepdim=True) ** 0.75
    expected = torch.log(counts * col.sum() / (row * col)).clamp_min(0)
    expected[counts == 0] = 0
    got = ppmi(counts.to_sparse()).to_dense()
    assert torch.allclose(got, expected, atol=1e-12)
    assert total > 0 and (got > 0).sum() < (counts > 0).sum()  # some pairs co-occur less than chance: dropped


def _two_topics(seed: int = 0) -> list:
    """Pieces 1-4 occur among contexts 10-19, pieces 5-8 among contexts 20-29: two groups of synonyms."""
    rng = random.Random(seed)
    docs = []
    for _ in range(300):
        words, contexts = (range(1, 5), range(10, 20)) if rng.random() < 0.5 else (range(5, 9), range(20, 30))
        docs.append([[rng.choice(contexts), rng.choice(words), rng.choice(contexts), rng.choice(contexts)]
                     for _ in range(3)])
    return docs


def test_pieces_that_share_contexts_get_alike_vectors() -> None:
    E, seen = ppmi_embeddings(_two_topics(), vocab_size=40, dim=8)
    assert seen[1:9].all() and seen[10:30].all() and not seen[0] and not seen[30:].any()
    assert torch.equal(E[~seen], torch.zeros(int((~seen).sum()), 8))  # pieces not in the text: left to the model
    unit = torch.nn.functional.normalize(E, dim=1)
    same = [float(unit[a] @ unit[b]) for a in range(1, 5) for b in range(1, 5) if a < b]
    other = [float(unit[a] @ unit[b]) for a in range(1, 5) for b in range(5, 9)]
    assert min(same) > 0.7 and max(other) < 0, (same, other)  # measured: 0.78 to 0.98 against -0.34 to -0.30
    assert abs(float(E[seen].std()) - TARGET_STD) < 1e-4 and float(E[seen].mean(0).abs().max()) < 1e-6


def test_the_same_text_gives_the_same_vectors() -> None:
    a, _ = ppmi_embeddings(_two_topics(), 40, 8, generator_seed=3)
    state = torch.random.get_rng_state()
    b, _ = ppmi_embeddings(_two_topics(), 40, 8, generator_seed=3)
    assert torch.equal(a, b) and torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_text_of_one_piece_leaves_the_random_start() -> None:
    E, seen = ppmi_embeddings([[[7, 7, 7, 7]]], vocab_size=10, dim=4)
    assert not seen.any() and not E.any()


def _run(vocab: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["pretrain", "--corpus", str(CORPUS), "--vocab", str(vocab), "--out", str(out),
                                     "--preset", "tiny", "--max-seq-length", "64", "--steps", "1", "--lr", "1e-9",
                                     "--eval-every", "100", "--threads", "1", *extra])


def _word_embeddings(run: Path) -> torch.Tensor:
    return load_file(run / "model.safetensors")["bert.embeddings.word_embeddings.weight"]


@pytest.mark.slow
def test_a_new_run_starts_from_the_corpus_vectors(vocab_dir, tmp_path) -> None:
    """By default the saved model's word embeddings are the PPMI-SVD vectors of the training documents (one step
    at lr 1e-9 moves them by ~1e-9); --init-embeddings random is BERT's start; both are recorded for resume."""
    from glassbert.pretrain.cooccurrence import ppmi_embeddings as vectors
    from glassbert.pretrain.job import PretrainArgs, build_datasets
    from glassbert.tokenizer import Tokenizer

    result = _run(vocab_dir, tmp_path / "ppmi")
    assert result.exit_code == 0, result.output
    assert "word embeddings: the training text's co-occurrence vectors (PPMI + SVD;" in result.output
    assert "pieces the text uses, the rest random, in" in result.output
    args = PretrainArgs(**{**json.loads((tmp_path / "ppmi" / "pretrain_args.json").read_text()),
                           "out": str(tmp_path / "ppmi")})
    assert args.init_embeddings == "ppmi"
    tok = Tokenizer.from_pretrained(tmp_path / "ppmi")
    E, seen = vectors(build_datasets(args, tok).train_ids, tok.vocab_size, 128, generator_seed=args.seed)
    saved = _word_embeddings(tmp_path / "ppmi")
    assert seen.sum() > 100 and torch.allclose(saved[seen], E[seen], atol=1e-6)

    result = _run(vocab_dir, tmp_path / "random", "--init-embeddings", "random")
    assert result.exit_code == 0 and "co-occurrence" not in result.output, result.output
    rand = _word_embeddings(tmp_path / "random")
    assert abs(float(rand[seen].std()) - 0.02) < 0.002  # normal(0, 0.02)
    assert json.loads((tmp_path / "random" / "pretrain_args.json").read_text())["init_embeddings"] == "random"


@pytest.mark.slow
def test_a_run_from_before_the_option_resumes_as_it_started(vocab_dir, tmp_path) -> None:
    """A run whose pretrain_args.json has no init_embeddings was started from random embeddings: resuming it
    before its first checkpoint starts it that way again, not from the corpus vectors."""
    run = tmp_path / "run"
    assert _run(vocab_dir, run, "--init-embeddings", "random").exit_code == 0
    saved = json.loads((run / "pretrain_args.json").read_text())
    del saved["init_embeddings"]
    saved["steps"] = 1
    (run / "pretrain_args.json").write_text(json.dumps(saved))
    for path in run.iterdir():  # as if it had stopped before its first checkpoint
        if path.name not in ("pretrain_args.json", "pretrain_data.json", "vocab.txt", "tokenizer.json",
                             "tokenizer_config.json", "special_tokens_map.json"):
            path.unlink() if path.is_file() else shutil.rmtree(path)
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(run)])
    assert result.exit_code == 0 and "co-occurrence" not in result.output, result.output


def test_init_embeddings_with_from_is_one_clear_line(tmp_path) -> None:
    from glassbert.pretrain.job import PretrainArgs

    with pytest.raises(ValueError, match="--init-embeddings ppmi: --from minilm starts from that model's own"):
        PretrainArgs(corpus="c", vocab="v", out="o", from_model="minilm", init_embeddings="ppmi")
    with pytest.raises(ValueError, match="--init-embeddings 'glove': choose one of ppmi, random"):
        PretrainArgs(corpus="c", vocab="v", out="o", init_embeddings="glove")
