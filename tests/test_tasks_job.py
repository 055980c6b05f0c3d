"""The finetune job and classify(): each task learns its synthetic set, the saved classifier is a
transformers model, freezing freezes, and bad input is reported with its file and line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import glassbert as gb
from glassbert import metrics as M
from glassbert import synthetic as S
from glassbert.modeldir import read_state_dict
from glassbert.tasks.classification import encode_classification, evaluate_classification, read_classification
from glassbert.tasks.common import EVAL_FILE, TASK_FILE, choose_pooling, freeze_parameters, parse_freeze
from glassbert.tasks.job import FinetuneArgs, build_task_model, finetune
from glassbert.tasks.answerer import answer
from glassbert.tasks.classifier import classify, format_table
from glassbert.tasks.tagger import tag
from helpers_tasks import tiny_bert, write_csv

QUIET = dict(progress=False, quiet=True)


def run(*args, **kwargs) -> dict:
    """finetune(FinetuneArgs(...))"""
    return finetune(FinetuneArgs(*args, **kwargs))


# ─── a tiny BERT with a vocabulary learned from the synthetic tasks ─────────────────────────
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sentiment")
    return (write_csv(d / "train.csv", ["text", "label"], S.make_sentiment(400, 1)),
            write_csv(d / "test.csv", ["text", "label"], S.make_sentiment(200, 2)))


@pytest.fixture(scope="module")
def classifier(tiny, sentiment, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("run") / "sentiment"
    train, test = sentiment
    summary = run(tiny, train, out, eval=test, epochs=3, batch_size=16, lr=1e-3, max_length=32, **QUIET)
    return summary, out


def weights(directory: Path) -> dict[str, torch.Tensor]:
    state, _ = read_state_dict(directory)
    return {k if k.startswith(("bert.", "classifier", "qa_outputs")) else f"bert.{k}": v for k, v in state.items()}


# ─── sequence classification ────────────────────────────────────────────────────────────────
def test_classifier_learns_sentiment_and_keeps_the_best_epoch(classifier, sentiment, tiny):
    summary, out = classifier
    assert summary["metrics"]["accuracy"] >= 0.9
    assert summary["labels"] == ["negative", "positive"]
    assert summary["steps"] == 3 * (400 // 16)

    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in evals if row["split"] == "eval"]
    assert [row["step"] for row in evals] == [25, 50, 75]  # one evaluation per epoch
    best = max(evals, key=lambda row: row["accuracy"])
    assert summary["best_step"] == best["step"]
    assert summary["metrics"]["accuracy"] == pytest.approx(best["accuracy"])

    record = json.loads((out / EVAL_FILE).read_text())
    assert record["classification"]["confusion"] and len(record["classification"]["confusion"]) == 2
    assert json.loads((out / TASK_FILE).read_text())["task"] == "classify"
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # out/ holds the best epoch's weights: evaluating them again gives the best accuracy
    model = gb.BertForSequenceClassification.from_pretrained(out)
    tok = gb.Tokenizer.from_pretrained(out)
    data = read_classification(sentiment[1], "text", "label", labels=summary["labels"])
    again = evaluate_classification(model, encode_classification(data, tok, 32), summary["labels"])
    assert again.metrics["accuracy"] == pytest.approx(best["accuracy"])


def test_saved_classifier_loads_in_transformers_with_equal_logits(classifier):
    transformers = pytest.importorskip("transformers")
    _, out = classifier
    hf = transformers.BertForSequenceClassification.from_pretrained(out).eval()
    ours = gb.BertForSequenceClassification.from_pretrained(out).eval()
    assert hf.config.id2label == {0: "negative", 1: "positive"}
    assert hf.config.label2id == {"negative": 0, "positive": 1}
    tok = gb.Tokenizer.from_pretrained(out)
    batch = tok(["the soup was great .", "honestly , the tea tasted stale and nobody liked it at all ."],
                padding=True)
    with torch.no_grad():
        expected = hf(**batch).logits
        got = ours(**batch).logits
    assert (got - expected).abs().max().item() <= 1e-5


def test_classify_texts_and_csv(classifier, tmp_path):
    _, out = classifier
    texts = ["everyone agreed that the soup was delicious .", "the bread was stale .",
             "this cheese arrived quickly and was horrible ."]
    rows = classify(out, texts=texts)
    assert [r["text"] for r in rows] == texts
    assert [r["label"] for r in rows] == ["positive", "negative", "negative"]
    for r in rows:
        assert sum(r["probs"].values()) == pytest.approx(1.0)
        assert r["probability"] == max(r["probs"].values())
    assert "probability" in format_table(rows)

    source = write_csv(tmp_path / "reviews.csv", ["id", "review"], [[i, t] for i, t in enumerate(texts)])
    written = tmp_path / "predictions.csv"
    from_file = classify(out, input=source, output=written, text_column="review", batch_size=2, progress=False)
    assert [r["label"] for r in from_file] == [r["label"] for r in rows]
    for a, b in zip(from_file, rows):
        assert a["text"] == b["text"] and a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    with written.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["text", "label", "probability", "prob_negative", "prob_positive"]
    assert [row[0] for row in table[1:]] == texts
    assert [row[1] for row in table[1:]] == [r["label"] for r in rows]
    assert [float(row[4]) for row in table[1:]] == pytest.approx([r["probs"]["positive"] for r in rows], abs=1e-6)

    with pytest.raises(ValueError, match=rf"{source} line 2: no column 'text'"):
        classify(out, input=source)


def test_text_pairs(tiny, tmp_path):
    rng = np.random.default_rng(0)
    words = ["soup", "bread", "coffee", "tea"]
    rows = []
    for _ in range(48):
        a, b = rng.choice(words), rng.choice(words)
        rows.append([f"the {a} was fine .", f"the {b} was fine .", "same" if a == b else "different"])
    train = write_csv(tmp_path / "pairs.csv", ["first", "second", "label"], rows)
    summary = run(tiny, train, tmp_path / "out", text_column="first", text_pair_column="second",
                       epochs=1, batch_size=16, lr=1e-3, **QUIET)
    assert summary["labels"] == ["different", "same"] and summary["steps"] == 3
    result = classify(tmp_path / "out", texts=["the tea was fine ."], text_pairs=["the tea was fine ."])
    assert result[0]["text_pair"] == "the tea was fine ."


# ─── freezing ───────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("freeze, frozen_prefixes", [
    ("encoder", ("bert.",)),
    ("embeddings", ("bert.embeddings.",)),
    ("1", ("bert.embeddings.", "bert.encoder.layer.0.")),
])
@pytest.mark.slow
def test_freezing_leaves_frozen_weights_bit_identical(tiny, sentiment, tmp_path, freeze, frozen_prefixes):
    out = tmp_path / "frozen"
    summary = run(tiny, sentiment[0], out, freeze=freeze, epochs=1, batch_size=16, lr=1e-2,
                       max_length=32, **QUIET)
    assert summary["steps"] == 25 and summary["freeze"] == freeze
    before = {k: v for k, v in build_task_model("classify", tiny, {0: "negative", 1: "positive"},
                                                summary["pooling"], seed=0).state_dict().items()}
    after = weights(out)
    assert set(after) == set(before)
    frozen = [k for k in before if k.startswith(frozen_prefixes)]
    trained = [k for k in before if not k.startswith(frozen_prefixes)]
    assert frozen and trained
    for k in frozen:
        assert torch.equal(after[k], before[k]), f"{k} changed although frozen"
    for k in trained:
        if k.endswith("pooler.dense.bias") and summary["pooling"] != "pooler":
            continue
        assert not torch.equal(after[k], before[k]), f"{k} did not train"
    assert summary["frozen_parameters"] == sum(before[k].numel() for k in frozen)


def test_freeze_values_and_pooling_choice(tiny, tmp_path):
    assert parse_freeze(None, 6) == "none" and parse_freeze(3, 6) == "3" and parse_freeze("Encoder", 6) == "encoder"
    with pytest.raises(ValueError, match="has 2 layers"):
        parse_freeze("7", 2)
    with pytest.raises(ValueError, match="expected none, embeddings, encoder"):
        parse_freeze("everything", 2)
    model = build_task_model("classify", tiny, {0: "a", 1: "b"})
    names = freeze_parameters(model, "2")
    assert names and all(n.startswith(("bert.embeddings.", "bert.encoder.")) for n in names)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("bert.pooler", "classifier")))

    # the tiny base has a pooler: kept; a sentence-transformers dir (MiniLM's layout) or a
    # checkpoint without pooler weights gets mean pooling when only the head trains
    assert choose_pooling(tiny, "encoder", None)[0] == "pooler"
    assert choose_pooling(tiny, "none", None)[0] == "pooler"
    assert choose_pooling(tiny, "encoder", "cls")[0] == "cls"
    st = tmp_path / "st"
    gb.BertModel.from_pretrained(tiny).save_pretrained(st)
    (st / "modules.json").write_text("[]")
    assert choose_pooling(st, "encoder", None)[0] == "mean"
    assert choose_pooling(st, "none", None)[0] == "pooler"
    bare = tmp_path / "bare"
    gb.BertForMaskedLM.from_pretrained(tiny).save_pretrained(bare)
    assert choose_pooling(bare, "encoder", None)[0] == "mean"
    with pytest.raises(ValueError, match="pooling 'max'"):
        choose_pooling(tiny, "none", "max")


@pytest.mark.slow
def test_early_stop(tiny, sentiment, tmp_path):
    summary = run(tiny, sentiment[0], tmp_path / "out", eval=sentiment[1], freeze="encoder", epochs=6,
                       batch_size=16, lr=1e-9, max_length=32, early_stop_patience=1, **QUIET)
    assert summary["stopped_by"] == "early_stop"
    assert summary["steps"] == 2 * 25 and summary["best_step"] == 25


# ─── token classification and QA ───────────────────────────────────────────────────────────
@pytest.mark.slow
def test_token_tagger_learns_ner(tiny, tmp_path):
    train = S.write_conll(S.make_ner(600, 1), tmp_path / "train.conll")
    test = S.write_conll(S.make_ner(200, 2), tmp_path / "test.conll")
    summary = run(tiny, train, tmp_path / "ner", task="token", eval=test, epochs=5, batch_size=16,
                       lr=2e-3, max_length=48, **QUIET)
    assert summary["metrics"]["f1"] >= 0.8
    assert summary["labels"][0] == "O" and "B-PER" in summary["labels"]
    config = json.loads((tmp_path / "ner" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    record = json.loads((tmp_path / "ner" / EVAL_FILE).read_text())
    assert set(record["entities"]["per_type"]) == {"LOC", "ORG", "PER"}
    with pytest.raises(ValueError, match="fine-tuned for task 'token'"):
        classify(tmp_path / "ner", texts=["Alice flew to Paris ."])

    # `glassbert tag` on the test sentences' raw text finds the entities the evaluation found
    sentences = S.make_ner(200, 2)
    tagged = tag(tmp_path / "ner", [" ".join(words) for words, _ in sentences])
    scores = M.entity_scores([tags for _, tags in sentences], [[w.tag for w in t.words] for t in tagged])
    assert scores.f1 == pytest.approx(summary["metrics"]["f1"])
    [text] = tag(tmp_path / "ner", ["Yesterday Grace Okafor visited the Hooli office in Cape Town."])
    assert [(e.type, e.text, e.start) for e in text.entities] == [("PER", "Grace Okafor", 10), ("ORG", "Hooli", 35),
                                                                 ("LOC", "Cape Town", 51)]


@pytest.mark.slow
def test_qa_learns_synthetic_squad(minilm_path, tmp_path):
    # A tiny model from scratch plateaus near EM 35 on this task in a CPU-sized run; MiniLM reaches
    # EM 100 after 100 steps of 16 (400 questions, lr 3e-4), so this is the smallest setup that passes.
    # Seeds 1, 2, 3, 5 and 42 reach EM 96–100 here; seed 0 (the default) is a bad start on the edge: at lr 3e-4
    # EM ≥ 80 with F.dropout's masks and 74 with glassbert.model.dropout's, at 2e-4 68 and 44. So this runs seed 1.
    train = S.write_squad(S.make_qa(400, 1), tmp_path / "train.json")
    test = S.write_squad(S.make_qa(100, 2), tmp_path / "test.json")
    summary = run(minilm_path, train, tmp_path / "qa", task="qa", eval=test, epochs=5, batch_size=16,
                       lr=3e-4, max_length=128, doc_stride=32, seed=1, **QUIET)
    assert summary["metrics"]["exact_match"] >= 80
    assert json.loads((tmp_path / "qa" / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    assert json.loads((tmp_path / "qa" / TASK_FILE).read_text())["doc_stride"] == 32

    # `glassbert answer` with the run's settings: the evaluation's scores on the test file, spans on a new passage
    assert answer(tmp_path / "qa", input=test).scores == pytest.approx(summary["metrics"])
    context = "Zoe Weber was born in Lima in 1931. Umar Costa bought a kayak in Oslo."
    found = answer(tmp_path / "qa", ["Where was Zoe Weber born?", "Who bought a kayak?"], context, n_best=3)
    assert [(a.best.text, a.best.start) for a in found.answers] == [("Lima", 22), ("Umar Costa", 36)]
    assert all(len(a.candidates) == 3 and a.best.probability > 0.5 for a in found.answers)


# ─── bad input: the error names the file and the line ──────────────────────────────────────
def test_missing_column(tiny, tmp_path):
    train = write_csv(tmp_path / "train.csv", ["review", "score"], [["good", "great"], ["bad", "other"]])
    with pytest.raises(ValueError, match=rf"{train} line 2: no column 'text'"):
        run(tiny, train, tmp_path / "out", **QUIET)


def test_unknown_label_at_eval(tiny, sentiment, tmp_path):
    test = write_csv(tmp_path / "test.csv", ["text", "label"],
                     [["the soup was great .", "positive"], ["the soup was fine .", "neutral"]])
    with pytest.raises(ValueError, match=rf"{test} line 3: unknown label 'neutral'"):
        run(tiny, sentiment[0], tmp_path / "out", eval=test, **QUIET)


@pytest.mark.parametrize("task, name", [("classify", "train.csv"), ("classify", "train.jsonl"),
                                        ("token", "train.conll"), ("qa", "train.json")])
def test_empty_file(tiny, tmp_path, task, name):
    train = tmp_path / name
    train.write_text("")
    with pytest.raises(ValueError, match=rf"{train}.*empty|{train}: no examples"):
        run(tiny, train, tmp_path / "out", task=task, **QUIET)


def test_conll_errors(tiny, tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Alice B-PER\nflew O\n\nBob B-PER\nParis B-LOC extra\n")
    with pytest.raises(ValueError, match=rf"{bad} line 5: expected 2 fields"):
        run(tiny, bad, tmp_path / "out", task="token", **QUIET)
    train = S.write_conll(S.make_ner(40, 1), tmp_path / "train.conll")
    test = tmp_path / "test.conll"
    test.write_text("Alice B-PER\nflew O\n\nBob B-PER\nsang O\nin O\nRome B-CITY\n")
    with pytest.raises(ValueError, match=rf"{test} line 7: unknown tag 'B-CITY'"):
        run(tiny, train, tmp_path / "out", task="token", eval=test, **QUIET)
    test.write_text("Alice B-PER\nflew O\nhome PER\n")
    with pytest.raises(ValueError, match=rf"{test} line 3: tag 'PER' is not BIO"):
        run(tiny, train, tmp_path / "out", task="token", eval=test, **QUIET)


def test_squad_answer_not_in_context(tiny, tmp_path):
    examples = S.make_qa(6, 1)
    path = S.write_squad(examples, tmp_path / "train.json")
    data = json.loads(path.read_text())
    qa = data["data"][0]["paragraphs"][0]["qas"][1]
    qa["answers"][0]["text"] = "Atlantis"
    path.write_text(json.dumps(data, indent=1))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if qa["id"] in text)
    with pytest.raises(ValueError, match=rf"{path} line {line}: question id '{qa['id']}': answer 'Atlantis' "
                                         r"is not at answer_start"):
        run(tiny, path, tmp_path / "out", task="qa", **QUIET)


# ─── --record: the explorer's record of a fine-tuning run ──────────────────────────────────
@pytest.mark.slow
def test_record_eval_examples(tiny, sentiment, tmp_path):
    from glassbert.recording import load_manifest
    out = tmp_path / "rec"
    summary = run(tiny, sentiment[0], out, eval=sentiment[1], epochs=1, batch_size=16, lr=1e-3, max_length=32,
                  record="samples=0,2;every_steps=10;epochs=last", **QUIET)
    assert summary["steps"] == 25
    manifest = load_manifest(out)
    assert [s["index"] for s in manifest["samples"]] == [0, 2]
    with sentiment[1].open(newline="") as f:
        first_eval_text = list(csv.reader(f))[1][0]  # row 0 of the eval set, decoded from its word pieces
    assert manifest["samples"][0]["text"].split() == first_eval_text.replace(" .", ".").split()
    steps = [snap["step"] for snap in manifest["snapshots"]]
    assert 0 in steps and 10 in steps and 20 in steps and steps[-1] == 25
    # the explorer's eval predictions: each sample's gold label, and per snapshot the predicted label's probabilities
    assert all(isinstance(s["label"], int) for s in manifest["samples"])
    last = manifest["snapshots"][-1]["predictions"]
    assert all(len(p["label_probs"]) == 2 and p["label_pred"] == max(range(2), key=p["label_probs"].__getitem__)
               for p in last)
    with pytest.raises(ValueError, match=r"--record samples \[500\]"):
        run(tiny, sentiment[0], tmp_path / "bad", eval=sentiment[1], epochs=1, batch_size=16,
            record="samples=500", **QUIET)


def test_a_set_smaller_than_a_batch_trains_as_one_batch(tiny, tmp_path):
    train = write_csv(tmp_path / "small.csv", ["text", "label"], S.make_sentiment(10, 3))
    summary = run(tiny, train, tmp_path / "small", epochs=2, batch_size=32, lr=1e-3, max_length=32, **QUIET)
    assert summary["steps"] == 2  # one batch of 10 per epoch, not a refusal


@pytest.mark.slow
def test_a_training_set_the_vocabulary_cannot_read_is_warned_about(tiny, sentiment, tmp_path, capsys):
    rows = [("Ταχεία καφέ αλεπού πηδά πάνω από σκύλο", "pos" if i % 2 else "neg") for i in range(16)]
    greek = write_csv(tmp_path / "greek.csv", ["text", "label"], rows)
    run(tiny, greek, tmp_path / "greek", epochs=1, batch_size=8, max_length=32, progress=False)
    out = capsys.readouterr().out
    assert f"warning: 100% of the word pieces of {greek} are [UNK] to {tiny}'s vocabulary" in out
    assert "1 epoch × 2 steps of 8" in out
    run(tiny, sentiment[0], tmp_path / "english", epochs=1, batch_size=64, max_length=32, progress=False)
    assert "[UNK]" not in capsys.readouterr().out  # the set the vocabulary was learned from


def test_unknown_share_counts_word_pieces_not_special_tokens(tiny):
    from glassbert.tasks.common import EncodedDataset
    tok = gb.Tokenizer.from_pretrained(tiny)
    cls, sep, unk = (tok.vocab[t] for t in ("[CLS]", "[SEP]", "[UNK]"))
    known = tok.encode("good", add_special_tokens=False)
    ds = EncodedDataset([{"input_ids": [cls, *known, unk, sep]}, {"input_ids": [cls, unk, unk, sep]}], pad_id=0)
    assert ds.unknown_share(tok) == pytest.approx(3 / (3 + len(known)))
    assert EncodedDataset([], pad_id=0).unknown_share(tok) == 0.0


@pytest.mark.slow
def test_a_stopped_finetune_resumes_from_its_last_epoch(tiny, sentiment, tmp_path, monkeypatch, capsys):
    """A checkpoint per epoch by default: a run stopped in epoch 2 goes on from the end of epoch 1 and ends
    with the weights of a run that never stopped (it used to keep no checkpoint until the end, and began again)."""
    from glassbert.train.trainer import Trainer
    train, test = sentiment
    common = dict(eval=test, epochs=2, batch_size=16, lr=1e-3, max_length=32, progress=False)
    run(tiny, train, tmp_path / "whole", **common)
    save = Trainer.save_checkpoint

    def save_then_stop(self, *a, **k):
        target = save(self, *a, **k)
        raise KeyboardInterrupt  # killed right after the end-of-epoch-1 checkpoint
    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, train, tmp_path / "stopped", **common)
    monkeypatch.undo()
    capsys.readouterr()
    run(tiny, train, tmp_path / "stopped", resume=True, **common)
    assert f"resuming {tmp_path / 'stopped'} at step 25 (epoch 2, batch 0)" in capsys.readouterr().out
    from glassbert.errors import InputError
    with pytest.raises(InputError, match=r"finished at step 50 \(stopped by epochs\) and its checkpoint was removed"):
        run(tiny, train, tmp_path / "stopped", resume=True, **common)  # once more: the run has finished
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "stopped")
    assert whole.keys() == resumed.keys()
    for k in whole:
        torch.testing.assert_close(resumed[k], whole[k], rtol=0, atol=0, msg=k)


def test_classify_scores_a_labelled_file_as_the_evaluation_did(classifier, sentiment):
    """Issue 29: `classify --input` of a file with the run's label column printed no score (answer did)."""
    summary, out = classifier
    rows = classify(out, input=sentiment[1])
    assert rows.scores["accuracy"] == pytest.approx(summary["metrics"]["accuracy"])
    assert rows.scores["macro_f1"] == pytest.approx(summary["metrics"]["macro_f1"])
    assert rows.scores_text.startswith("accuracy ") and len(rows) == 200
    assert classify(out, texts=["good", "bad"]).scores is None


@pytest.mark.slow
def test_a_finished_run_keeps_its_model_once(classifier, tiny, sentiment, tmp_path, capsys):
    """Issue 29: a finished run held its model three times (the root, best/, checkpoint/ with the optimizer
    state). Now the root model alone by default; --keep-checkpoint keeps what extends the run."""
    _, out = classifier  # two evaluations, so best/ was written while it ran
    assert not (out / "checkpoint").exists() and not (out / "best").exists()
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.safetensors")] == ["model.safetensors"]
    assert not list(out.rglob("*.pt")) and not [p for p in out.iterdir() if p.name.startswith(".")]

    train, test = sentiment
    common = dict(eval=test, epochs=1, batch_size=16, lr=1e-3, max_length=32, progress=False)
    kept = tmp_path / "kept"
    run(tiny, train, kept, keep_checkpoint=True, **common)
    assert (kept / "checkpoint" / "trainer_state.pt").is_file() and (kept / "best" / "model.safetensors").is_file()
    capsys.readouterr()
    run(tiny, train, kept, resume=True, keep_checkpoint=True, **common)
    assert (f"{kept} already finished at step 25 (stopped by epochs): nothing to train; a larger --epochs extends it"
            in capsys.readouterr().out)
    run(tiny, train, kept, resume=True, **dict(common, epochs=2))  # extended, then pruned
    assert not (kept / "checkpoint").exists() and not (kept / "best").exists()
    assert json.loads((kept / EVAL_FILE).read_text())["steps"] == 50


@pytest.mark.slow
def test_resume_before_the_first_checkpoint_says_it_starts_over(tiny, sentiment, tmp_path, monkeypatch, capsys):
    from glassbert.train.trainer import Trainer
    train, _ = sentiment

    def stop(self, *a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "_train_step", stop)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, train, tmp_path / "r", epochs=1, batch_size=16, max_length=32, progress=False)
    monkeypatch.undo()
    capsys.readouterr()
    run(tiny, train, tmp_path / "r", epochs=1, batch_size=16, max_length=32, progress=False, resume=True)
    assert f"{tmp_path / 'r'} has no checkpoint yet: starting from step 0" in capsys.readouterr().out


def test_save_every_must_be_a_positive_number_of_steps(tiny, sentiment, tmp_path):
    from glassbert.errors import InputError
    with pytest.raises(InputError, match="save_every must be >= 1 step, got 0"):
        run(tiny, sentiment[0], tmp_path / "r", save_every=0, **QUIET)
    for bad in (0, 2.5, True):
        with pytest.raises(InputError, match=f"log_every must be a whole number of steps >= 1, got {bad!r}"):
            run(tiny, sentiment[0], tmp_path / "r", log_every=bad, **QUIET)


@pytest.mark.parametrize("when", ["after the first checkpoint", "before any checkpoint"])
def test_ctrl_c_says_how_the_run_continues(when, tiny, sentiment, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from glassbert.cli import main
    from glassbert.train.trainer import Trainer
    save = Trainer.save_checkpoint

    def save_then_stop(self, *a, **k):
        save(self, *a, **k)
        raise KeyboardInterrupt

    def stop(self, *a, **k):
        raise KeyboardInterrupt
    if when == "after the first checkpoint":
        monkeypatch.setattr(Trainer, "save_checkpoint", save_then_stop)
    else:
        monkeypatch.setattr(Trainer, "_train_step", stop)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["finetune", str(tiny), "--train", str(sentiment[0]), "--out", str(out),
                                       "--epochs", "2", "--batch-size", "16", "--max-length", "32"])
    assert result.exit_code == 130
    said = result.stderr.strip().splitlines()[-1]
    if when == "after the first checkpoint":
        assert said == f"stopped: the same command with --resume continues {out} from its last checkpoint"
    else:
        assert said == f"stopped before {out} had a checkpoint: the same command with --resume starts it again from step 0"
    assert "Aborted" not in result.stderr and "Traceback" not in result.output + result.stderr


def test_resume_of_a_directory_that_holds_no_run_is_refused(tiny, sentiment, tmp_path):
    """A mistyped or moved run directory: --resume used to train a new run there from step 0."""
    from glassbert.errors import MissingError
    with pytest.raises(MissingError, match=r"--resume: .*moved-away holds no run to continue"):
        run(tiny, sentiment[0], tmp_path / "moved-away", resume=True, **QUIET)
    assert not (tmp_path / "moved-away").exists()


def _files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("holds", ["a run's names", "the user's own files"])
def test_resume_of_a_users_folder_touches_nothing(holds, tiny, sentiment, tmp_path):
    """Issue 32: --resume into a folder that holds best/, checkpoint/ and metrics.jsonl of the user's own (no
    glassbert run: no trainer_config.json, no complete checkpoint) said "no checkpoint yet: starting from step 0"
    and deleted them; a folder of notes got a whole run written into it."""
    from glassbert.errors import MissingError
    folder = tmp_path / "lookalike"
    if holds == "a run's names":
        for name in ("best/model.txt", "checkpoint/weights.bin", "metrics.jsonl"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(f"the user's {name}")
    else:
        folder.mkdir()
        (folder / "notes.txt").write_text("notes")
        (folder / "thesis.tex").write_text("years of work")
    before = _files_of(folder)
    with pytest.raises(MissingError, match=r"lookalike holds no run to continue"):
        run(tiny, sentiment[0], folder, resume=True, **QUIET)
    assert _files_of(folder) == before


def test_a_training_file_of_blank_texts_is_refused(tiny, tmp_path):
    """Issue 32: every text blank trained a classifier on [CLS] [SEP] alone, exit 0."""
    from glassbert.errors import InputError
    blank = write_csv(tmp_path / "blank.csv", ["text", "label"], [["", "good"], ["   ", "bad"]] * 8)
    with pytest.raises(InputError, match=r"blank.csv: every text in column 'text' is blank \(16 rows\)"):
        run(tiny, blank, tmp_path / "r", batch_size=4, **QUIET)
    assert not (tmp_path / "r").exists()
    some = write_csv(tmp_path / "some.csv", ["text", "label"], [["", "good"], ["a fine text", "bad"]] * 2)
    assert read_classification(some, "text", "label").texts[0] == ""  # one empty text is an input like any other


@pytest.mark.slow
@pytest.mark.parametrize("log_every", [None, 3])
def test_a_finetune_killed_between_log_rows_writes_the_same_rows(tiny, sentiment, tmp_path, log_every):
    """Issue 32: fine-tuning logs every 10 steps; with --save-every 7 a run killed after its checkpoint of step 14
    (the log window then holds steps 11 to 14) drew another row at step 20. Rows and final weights now equal
    the run that never stopped, with the default rows and with a --log-every 3 that does not divide --save-every
    (the window then holds steps 13 and 14)."""
    import os
    import safetensors.torch
    from click.testing import CliRunner

    import helpers_train as h
    from glassbert.cli import main
    train, test = sentiment

    def line(out: Path) -> list[str]:
        return ["finetune", str(tiny), "--train", str(train), "--eval", str(test), "--out", str(out), "--epochs", "2",
                "--batch-size", "16", "--max-length", "32", "--lr", "1e-3", "--save-every", "7",
                "--precision", "fp32", "--threads", "1"] + (["--log-every", str(log_every)] if log_every else [])

    def curve(out: Path) -> list[dict]:
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("elapsed", "examples_per_s", "tokens_per_s")}
                for r in rows if r["split"] in ("train", "eval")]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    result = CliRunner().invoke(main, line(whole))
    assert result.exit_code == 0, result.output
    proc, blocked_at = h.start_blocking(["cli", "--block-at", "14", "--", *line(killed)],
                                        env=dict(os.environ, OMP_NUM_THREADS="1"))
    h.kill(proc)
    assert blocked_at == 14
    result = CliRunner().invoke(main, [*line(killed), "--resume"])
    assert result.exit_code == 0 and "resuming" in result.output, result.output
    assert curve(killed) == curve(whole)
    every = log_every or 10  # and the last step's row, of a shorter window (3: steps 49 and 50)
    assert [r["step"] for r in curve(whole) if r["split"] == "train"] == sorted({*range(every, 51, every), 50})
    a, b = (safetensors.torch.load_file(str(d / "model.safetensors")) for d in (whole, killed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_classifier_that_learned_nothing_says_what_to_try(tiny, sentiment, tmp_path, capsys):
    """One label for every eval example (a small model at base-size BERT's 5e-5, one epoch) gets a hint;
    a classifier that tells the labels apart gets none."""
    train, test = sentiment
    run(tiny, train, tmp_path / "slow", eval=test, epochs=1, batch_size=16, lr=1e-7, max_length=32, progress=False)
    out = capsys.readouterr().out
    assert "hint: the model answers" in out and "for every eval example" in out
    assert "a larger --lr (this run's 1e-07 suits base-size BERTs" in out and "often needs 0.001" in out
    run(tiny, train, tmp_path / "fast", eval=test, epochs=2, batch_size=16, lr=1e-3, max_length=32, progress=False)
    assert "hint:" not in capsys.readouterr().out


def test_the_one_answer_hint_reads_the_confusion_matrix():
    from glassbert.tasks.classification import hint as one_answer_hint
    from glassbert.train import Evaluation
    one = Evaluation({"accuracy": 0.5}, {"confusion": np.array([[5, 0], [5, 0]])})
    assert "answers 'neg' for every" in one_answer_hint(one, ["neg", "pos"], 5e-5, 100_000_000)
    assert "often needs 0.0001" in one_answer_hint(one, ["neg", "pos"], 5e-5, 100_000_000)
    assert "more --epochs or data" in one_answer_hint(one, ["neg", "pos"], 1e-3, 1_000_000)
    assert one_answer_hint(Evaluation({}, {"confusion": np.array([[5, 1], [5, 0]])}), ["neg", "pos"], 5e-5, 1) is None
    assert one_answer_hint(Evaluation({}, {"confusion": np.array([[0, 0], [5, 0]])}), ["neg", "pos"], 5e-5, 1) is None
    assert one_answer_hint(None, ["neg", "pos"], 5e-5, 1) is None
