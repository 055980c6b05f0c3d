"""Embedder: pooling choices, normalization, length-sorted batching that restores order."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import glassbert as gb
from glassbert.embed import cosine_matrix
from conftest import SENTENCES


@pytest.fixture(scope="module")
def embedder(minilm_path):
    return gb.Embedder(minilm_path)


def test_order_restored_whatever_the_batch_size(embedder):
    one_by_one = np.stack([embedder.encode([s])[0] for s in SENTENCES])
    batched = embedder.encode(SENTENCES, batch_size=4)
    assert np.abs(one_by_one - batched).max() < 1e-5


def test_poolings(embedder):
    tok, model = embedder.tokenizer, embedder.model
    batch = tok(SENTENCES[:2])
    with torch.no_grad():
        out = model(**batch)
    cls = embedder.encode(SENTENCES[:2], pooling="cls", normalize=False)
    pooled = embedder.encode(SENTENCES[:2], pooling="pooler", normalize=False)
    assert np.array_equal(embedder.encode(SENTENCES[:2], pooling="pooled", normalize=False), pooled)  # the old name
    assert np.abs(cls - out.sequence_output[:, 0].numpy()).max() < 1e-5
    assert np.abs(pooled - out.pooled_output.numpy()).max() < 1e-5
    mean = embedder.encode(SENTENCES[:1], pooling="mean", normalize=False)[0]
    n = int(batch["attention_mask"][0].sum())
    assert np.abs(mean - out.sequence_output[0, :n].mean(0).numpy()).max() < 1e-5
    unit = embedder.encode(SENTENCES)  # unit length by default, as `glassbert embed`
    assert np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)


def test_semantics_of_the_real_checkpoint(embedder):
    """The example of the article "What is BERT?": 'fair' the fun fair is closer to a carnival than to a fair judge."""
    sims = cosine_matrix(embedder.encode(["The fair was packed with fun rides.", "We went to the carnival.",
                                          "The judge was fair."], normalize=True))
    assert sims[0, 1] > sims[1, 2]


def test_word_embeddings_are_contextual(embedder):
    (t1, v1), (t2, v2) = embedder.encode_tokens(["The fair was packed with fun rides.", "The judge was fair."])
    a, b = v1[t1.index("fair")], v2[t2.index("fair")]
    assert v1.shape == (len(t1), 384)
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) < 0.95  # same word, different meanings


def test_bad_input(embedder, caplog):
    with pytest.raises(ValueError, match="no texts to embed"):
        embedder.encode([])
    with pytest.raises(ValueError, match="pooling must be one of"):
        embedder.encode(["x"], pooling="max")
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        assert embedder.encode(["word " * 1000]).shape == (1, 384)
    assert "truncated" in caplog.text


def test_embedder_chooses_threads_as_the_embed_command_does(minilm_path, monkeypatch):
    """Issue 29: Embedder never chose threads (25 texts/s against the command's 189 on a busy machine)."""
    from click.testing import CliRunner

    from glassbert import threads
    from glassbert.cli import main
    for var in ("OMP_NUM_THREADS", "GLASSBERT_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setattr(threads, "_busy_cores", lambda: 6.0)
    torch.set_num_threads(1)
    assert CliRunner().invoke(main, ["embed", "minilm", "a cat"]).exit_code == 0
    by_command = torch.get_num_threads()
    torch.set_num_threads(1)
    embedder = gb.Embedder(minilm_path)
    assert torch.get_num_threads() == by_command == 2    # 6 of 8 cores busy with other work
    gb.Embedder(minilm_path, threads=3)
    assert torch.get_num_threads() == 3
    gb.Embedder(embedder.model, embedder.tokenizer)      # a model object: its caller has chosen
    assert torch.get_num_threads() == 3
