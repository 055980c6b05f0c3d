"""A saved classifier means the same in transformers, or transformers says it does not.

transformers' BertForSequenceClassification always classifies the pooler's output. A glassbert classifier
pooled by mean or [CLS] (``--pooling mean|cls``, and ``--freeze encoder``'s default on a checkpoint with an
untrained pooler) saves its head under a name transformers does not know, so transformers reports the
classifier as newly initialized instead of silently predicting other labels; glassbert reads it back as is.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import pytest
import safetensors.torch
import torch

import glassbert as gb
from glassbert import synthetic as S
from glassbert.registry import load_model
from glassbert.tasks.common import EncodedDataset, choose_pooling
from glassbert.tasks.job import FinetuneArgs, finetune
from glassbert.tasks.classifier import classify
from glassbert.train import Callback, Trainer, TrainConfig
from helpers_tasks import write_csv

transformers = pytest.importorskip("transformers")
HF_CLASSES = ("BertForSequenceClassification", "AutoModelForSequenceClassification")
LABELS = {i: f"label{i}" for i in range(5)}


@contextlib.contextmanager
def transformers_log():
    """The records transformers logs at WARNING and above (its loggers do not propagate to the root
    logger, so caplog alone does not see them)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = transformers.logging.get_logger()  # the library's root logger: "transformers"
    handler = Keep(logging.WARNING)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_warning()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        transformers.logging.set_verbosity(verbosity)


def said(records: list[logging.LogRecord]) -> str:
    return "\n".join(r.getMessage() for r in records)


def load_in_transformers(directory: Path, class_name: str):
    with transformers_log() as records:
        model = getattr(transformers, class_name).from_pretrained(directory).eval()
    return model, said(records)


def says_classifier_is_new(text: str) -> bool:
    """transformers 4 ("... are newly initialized: ['classifier.bias', 'classifier.weight']") and 5
    (a LOAD REPORT: "classifier.weight | MISSING", "newly initialized") both say so in these words."""
    return "classifier.weight" in text and "classifier.bias" in text and "newly initialized" in text


def batch(n: int = 6, length: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (n, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(n):
        mask[row, 3 + row:] = 0  # different lengths, so mean pooling differs from the others
    ids[mask == 0] = 0
    return dict(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=mask)


def logits(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def trained_looking_classifier(pooling: str) -> gb.BertForSequenceClassification:
    """A small classifier whose head (and pooler) are far from their init, so the pooling decides the labels."""
    torch.manual_seed(0)
    config = gb.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=64, id2label=LABELS,
                           classifier_pooling=pooling)
    model = gb.BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for linear in (model.classifier, model.bert.pooler.dense):
            linear.weight.normal_(0.0, 1.0)
            linear.bias.normal_(0.0, 1.0)
    return model


# ─── mean and [CLS] pooling: transformers says the head is new; glassbert reads it back ─────────
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_mean_or_cls_classifier_does_not_load_silently_in_transformers(tmp_path, pooling):
    model = trained_looking_classifier(pooling)
    model.save_pretrained(tmp_path)
    expected = logits(model, batch())

    for name in HF_CLASSES:
        _, text = load_in_transformers(tmp_path, name)
        assert says_classifier_is_new(text), f"{name} loaded a {pooling}-pooled classifier silently:\n{text}"
        assert f"classifier_{pooling}_pooling.weight" in text  # and names the head it did not use

    saved = set(safetensors.torch.load_file(str(tmp_path / "model.safetensors")))
    assert {f"classifier_{pooling}_pooling.weight", f"classifier_{pooling}_pooling.bias"} <= saved
    assert "classifier.weight" not in saved and "classifier.bias" not in saved
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["classifier_pooling"] == pooling

    # glassbert: the same logits through every way it loads a model directory
    for again in (gb.BertForSequenceClassification.from_pretrained(tmp_path), load_model(tmp_path)):
        assert type(again) is gb.BertForSequenceClassification
        assert torch.equal(again.classifier.weight, model.classifier.weight)
        assert torch.equal(logits(again, batch()), expected)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_trainer_checkpoints_keep_the_head_under_its_saved_name(tmp_path, pooling):
    """The Trainer's checkpoint/ and best/ go through safetensors' save_model/load_model(strict=True) and
    state_dict()/load_state_dict() on the module itself: the same names both ways."""
    model = trained_looking_classifier(pooling)
    expected = logits(model, batch())
    state = model.state_dict()
    assert f"classifier_{pooling}_pooling.weight" in state and "classifier.weight" not in state
    assert dict(model.named_parameters())["classifier.weight"] is model.classifier.weight  # the module's own name

    path = tmp_path / "model.safetensors"
    safetensors.torch.save_model(model, str(path))
    for target in (trained_looking_classifier(pooling), gb.BertForSequenceClassification(model.config)):
        safetensors.torch.load_model(target, path, strict=True)
        assert torch.equal(logits(target.eval(), batch()), expected)
        fresh = gb.BertForSequenceClassification(model.config).eval()
        fresh.load_state_dict(target.state_dict())  # the Trainer's in-memory best weights
        assert torch.equal(logits(fresh, batch()), expected)


class _StopAfterSave(Callback):
    def on_save(self, trainer, path) -> None:
        raise KeyboardInterrupt  # as if killed right after the checkpoint at step 3


@pytest.mark.slow
def test_a_mean_classifier_resumes_exactly_and_keeps_its_best(tmp_path):
    """The Trainer's own round trips (checkpoint/ on resume, best/ restored at the end) on a mean-pooled head."""
    g = torch.Generator().manual_seed(3)
    items = [{"input_ids": torch.randint(5, 99, (int(n),), generator=g).tolist(), "labels": int(n) % 5}
             for n in torch.randint(4, 12, (40,), generator=g)]
    data = EncodedDataset(items, pad_id=0)

    def run(out: Path, scores: list[float], callbacks=(), resume=False) -> gb.BertForSequenceClassification:
        model = trained_looking_classifier("mean")
        config = TrainConfig(out_dir=out, batch_size=8, lr=1e-3, max_steps=6, save_every=3, eval_every=2,
                             keep_best="score", keep_best_mode="max", progress=False, device="cpu")
        score = iter(scores)
        Trainer(model, data, data.collate, config, eval_fn=lambda m: {"score": next(score)},
                callbacks=list(callbacks)).fit(resume=resume)
        return model

    whole = run(tmp_path / "whole", [0.5, 0.9, 0.1])  # evaluations at steps 2, 4, 6: the best is step 4's
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", [0.5], [_StopAfterSave()])
    resumed = run(tmp_path / "cut", [0.9, 0.1], resume=True)
    best = safetensors.torch.load_file(str(tmp_path / "cut" / "best" / "model.safetensors"))
    assert "classifier_mean_pooling.weight" in best
    assert torch.equal(resumed.classifier.weight, best["classifier_mean_pooling.weight"])
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_freeze_encoder_finetune_is_mean_pooled_and_not_a_silent_transformers_model(tmp_path):
    """The case of the report: `finetune --freeze encoder` on a checkpoint without a trained pooler picks
    mean pooling; transformers must not load the result as if it were its classifier."""
    texts = [t for t, _ in S.make_sentiment(400, 99)]
    tok = gb.Tokenizer.train(texts, vocab_size=400, min_frequency=1, show_progress=False)
    torch.manual_seed(0)
    config = gb.BertConfig.preset("tiny", vocab_size=tok.vocab_size, max_position_embeddings=64)
    base = gb.BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "base", tokenizer=tok)
    train = write_csv(tmp_path / "train.csv", ["text", "label"], S.make_sentiment(160, 1))
    test = write_csv(tmp_path / "test.csv", ["text", "label"], S.make_sentiment(48, 2))
    pooling, reason = choose_pooling(base, "encoder", None)  # what finetune prints
    assert pooling == "mean" and "--pooling pooler" in reason
    out = tmp_path / "clf"
    finetune(FinetuneArgs(base, train, out, eval=test, epochs=2, batch_size=16, lr=3e-3, max_length=32,
                          freeze="encoder", progress=False, quiet=True, keep_checkpoint=True))  # best/, checkpoint/
    assert json.loads((out / "config.json").read_text())["classifier_pooling"] == "mean"

    for name in HF_CLASSES:
        _, text = load_in_transformers(out, name)
        assert says_classifier_is_new(text), f"{name} loaded the mean-pooled classifier silently:\n{text}"

    ours = gb.BertForSequenceClassification.from_pretrained(out)
    best = gb.BertForSequenceClassification.from_pretrained(out / "best")  # written by the Trainer
    sample = ["the soup was great .", "the bread was stale and nobody liked it ."]
    inputs = tok(sample, padding=True)
    assert torch.equal(logits(ours, inputs), logits(best, inputs))
    checkpoint = out / "checkpoint" / "model.safetensors"  # what a resume reads back, as it does
    resumed = gb.BertForSequenceClassification(ours.config).eval()
    safetensors.torch.load_model(resumed, checkpoint, strict=True)
    assert torch.equal(resumed.classifier.weight,
                       safetensors.torch.load_file(str(checkpoint))["classifier_mean_pooling.weight"])
    predicted = [ours.config.id2label[i] for i in logits(ours, inputs).argmax(-1).tolist()]
    assert [row["label"] for row in classify(out, texts=sample)] == predicted  # `glassbert classify`


# ─── directories older glassbert wrote: classifier.* whatever the pooling ──────────────────────
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_directory_from_older_glassbert_still_loads_the_same(tmp_path, pooling, caplog):
    model = trained_looking_classifier(pooling)
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    old = {k.replace(f"classifier_{pooling}_pooling.", "classifier."): v
           for k, v in safetensors.torch.load_file(str(path)).items()}
    assert "classifier.weight" in old
    safetensors.torch.save_file(old, str(path), metadata={"format": "pt"})

    with caplog.at_level(logging.INFO, logger="glassbert"):
        again = gb.BertForSequenceClassification.from_pretrained(tmp_path)
    assert "newly initialized" not in caplog.text and "ignored" not in caplog.text
    assert torch.equal(logits(again, batch()), logits(model, batch()))
    legacy_checkpoint = gb.BertForSequenceClassification(model.config).eval()
    safetensors.torch.load_model(legacy_checkpoint, path, strict=True)  # a checkpoint/ from before
    assert torch.equal(logits(legacy_checkpoint, batch()), logits(model, batch()))

    again.save_pretrained(tmp_path / "resaved")  # the README's way to make it say what it is
    _, text = load_in_transformers(tmp_path / "resaved", "BertForSequenceClassification")
    assert says_classifier_is_new(text)


def test_a_head_trained_for_one_pooling_is_not_used_for_another(tmp_path, caplog):
    """Loading a mean-pooled classifier as a pooler one gives a new head, and glassbert says so."""
    trained_looking_classifier("mean").save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        gb.BertForSequenceClassification.from_pretrained(tmp_path, classifier_pooling="pooler")
    assert "newly initialized" in caplog.text and "classifier.weight" in caplog.text


# ─── the pooler: transformers' own classifier, the same logits ─────────────────────────────────
def test_a_pooler_classifier_loads_in_transformers_with_equal_logits(tmp_path):
    model = trained_looking_classifier("pooler")
    model.save_pretrained(tmp_path)
    assert "classifier.weight" in safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    expected = logits(model, batch())
    for name in HF_CLASSES:
        hf, text = load_in_transformers(tmp_path, name)
        assert not text, f"{name} warned on loading a pooler classifier:\n{text}"
        assert type(hf).__name__ == "BertForSequenceClassification"
        assert (logits(hf, batch()) - expected).abs().max().item() <= 1e-5
    assert torch.equal(logits(load_model(tmp_path), batch()), expected)
