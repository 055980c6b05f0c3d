"""From sample data to a trained model's answers: `glassbert data make`, `tag` and `answer`, as a user types them.

The tagger and the QA model are tiny BERTs fine-tuned for one short epoch here: they need not be right, only
read the way they were trained (their tags and answers equal the evaluation's, word for word).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from glassbert import synthetic as S
from glassbert.cli import main
from glassbert.heads import BertForQuestionAnswering, BertForTokenClassification
from glassbert.synthetic import MADE_FILE, make_dataset
from glassbert.tasks.answerer import answer
from glassbert.tasks.classification import read_classification
from glassbert.tasks.common import TASK_FILE
from glassbert.tasks.job import FinetuneArgs, finetune
from glassbert.tasks.qa import evaluate_qa, prepare_qa_features, read_squad
from glassbert.tasks.tagger import format_tags, split_words, tag
from glassbert.tasks.tagging import check_tags, encode_token_classification, first_piece_tags, read_conll
from glassbert.tokenizer import Tokenizer
from helpers_tasks import tiny_bert

QUIET = dict(progress=False, quiet=True)


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# ─── data make ──────────────────────────────────────────────────────────────────────────────
def test_data_make_writes_what_the_readers_read(tmp_path):
    result = run("data", "make", "ner", "--out", tmp_path / "ner", "--n", 20, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'ner' / 'train.conll'} (20 sentences)" in result.output
    assert f"wrote {tmp_path / 'ner' / 'test.conll'} (5 sentences)" in result.output
    assert (f"next: glassbert finetune minilm --task token --train {tmp_path / 'ner' / 'train.conll'} "
            f"--eval {tmp_path / 'ner' / 'test.conll'} --out runs/ner") in result.output
    train, test = read_conll(tmp_path / "ner" / "train.conll"), read_conll(tmp_path / "ner" / "test.conll")
    assert (len(train), len(test)) == (20, 5)
    check_tags(train + test)
    assert [list(s) for s in train] == [[w, t] for w, t in S.make_ner(20, S.split_seeds(3)[0])]

    assert run("data", "make", "qa", "--out", tmp_path / "qa", "--n", 8).exit_code == 0
    questions, dev = read_squad(tmp_path / "qa" / "train.json"), read_squad(tmp_path / "qa" / "dev.json")
    assert (len(questions), len(dev)) == (8, 2) and all(q.answers for q in questions + dev)
    assert not {q.id for q in questions} & {q.id for q in dev}

    assert run("data", "make", "sentiment", "--out", tmp_path / "sentiment", "--n", 12).exit_code == 0
    rows = read_classification(tmp_path / "sentiment" / "train.csv", "text", "label")
    assert len(rows) == 12 and set(rows.label_names) <= {"negative", "positive"}
    assert len(read_classification(tmp_path / "sentiment" / "test.csv", "text", "label")) == 3
    assert json.loads((tmp_path / "sentiment" / MADE_FILE).read_text()) == {
        "set": "sentiment", "seed": 0, "files": {"train.csv": 12, "test.csv": 3}}


def test_data_make_is_deterministic_by_seed(tmp_path):
    def files(out, seed):
        made = make_dataset("qa", out, n=10, seed=seed)
        return [path.read_bytes() for path in made.files]

    first = files(tmp_path / "a", 0)
    assert files(tmp_path / "b", 0) == first
    assert files(tmp_path / "c", 1) != first
    assert first[0] != first[1]  # the evaluation file is not the training file


def test_data_make_refuses_an_existing_folder_unless_overwrite(tmp_path):
    out = tmp_path / "ner"
    assert run("data", "make", "ner", "--out", out, "--n", 8).exit_code == 0
    before = (out / "train.conll").read_bytes()
    result = run("data", "make", "ner", "--out", out, "--n", 12)
    assert result.exit_code != 0 and "already holds files: pass --overwrite" in result.output
    assert (out / "train.conll").read_bytes() == before
    result = run("data", "make", "qa", "--out", out, "--n", 12, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["dev.json", MADE_FILE, "train.json"]  # the NER set is gone

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = run("data", "make", "ner", "--out", mine, "--overwrite")
    assert result.exit_code != 0 and "did not write" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("args, message", [
    (["data", "make", "pos"], "Invalid value for '{ner|qa|sentiment}'"),
    (["data", "make", "ner", "--n", "0"], "0 is not in the range x>=1"),
])
def test_data_make_bad_options(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output


# ─── a tiny tagger and a tiny QA model ──────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs fine-tuned for one epoch: token (on data made like `data make ner`), qa and classify."""
    root = tmp_path_factory.mktemp("runs")
    base = tiny_bert(root / "base")
    ner = make_dataset("ner", root / "data" / "ner", n=64, seed=1).files
    qa = make_dataset("qa", root / "data" / "qa", n=32, seed=1).files
    sentiment = make_dataset("sentiment", root / "data" / "sentiment", n=32, seed=1).files
    common = dict(epochs=1, batch_size=16, lr=2e-3, **QUIET)
    for task, (train, test), max_length in (("token", ner, 64), ("qa", qa, 40), ("classify", sentiment, 64)):
        finetune(FinetuneArgs(base, train, root / task, task=task, eval=test, max_length=max_length, doc_stride=16,
                              **common))
    return {"token": root / "token", "qa": root / "qa", "classify": root / "classify",
            "ner_test": list(ner)[1], "qa_dev": list(qa)[1]}


# ─── tag ────────────────────────────────────────────────────────────────────────────────────
def test_tag_reads_each_word_from_its_first_piece_as_the_tagger_trains(runs):
    """Tagging a sentence's raw text gives, word for word, the tags the evaluation reads."""
    sentences = read_conll(runs["ner_test"])
    tok = Tokenizer.from_pretrained(runs["token"])
    model = BertForTokenClassification.from_pretrained(runs["token"]).eval()
    label2id = {label: i for i, label in model.config.id2label.items()}
    dataset = encode_token_classification(sentences, tok, label2id, 64)
    expected = []
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            logits = model(**{k: v[None] for k, v in item.items() if k != "labels"}).logits[0]
            expected.append(first_piece_tags(logits.argmax(-1), item["labels"], model.config.id2label)[1])

    results = tag(runs["token"], [" ".join(words) for words, _ in sentences])
    assert [[w.text for w in r.words] for r in results] == [list(words) for words, _ in sentences]
    assert [[w.tag for w in r.words] for r in results] == expected
    for r in results:
        assert all(r.text[w.start:w.end] == w.text for w in r.words)
        assert all(r.text[e.start:e.end] == e.text for e in r.entities)


def test_tag_spans_decode_bio_into_entities(runs, tmp_path):
    """A tagger that says I-PER for every word makes one entity of the whole text (conlleval's reading of a
    leading I-), and B-LOC for every word one entity per word, each with its characters."""
    def always(label: str) -> Path:
        model = BertForTokenClassification.from_pretrained(runs["token"])
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(-10).index_fill_(0, torch.tensor(model.config.label2id[label]), 10)
        out = model.save_pretrained(tmp_path / label, tokenizer=Tokenizer.from_pretrained(runs["token"]))
        (out / TASK_FILE).write_text((runs["token"] / TASK_FILE).read_text())
        return out

    text = "  Dr. Zoe  Weber-Costa flew home!"
    [one] = tag(always("I-PER"), [text])
    assert [(e.type, e.text, e.start, e.end) for e in one.entities] == [("PER", text.strip(), 2, len(text))]
    assert one.entities[0].score == pytest.approx(1.0, abs=1e-6)
    [each] = tag(always("B-LOC"), [text])
    words = ["Dr", ".", "Zoe", "Weber", "-", "Costa", "flew", "home", "!"]
    assert [e.text for e in each.entities] == words == [w for w, _ in split_words(text, Tokenizer.from_pretrained(
        runs["token"]))]
    assert all(text[e.start:e.end] == e.text for e in each.entities)


def test_tag_windows_a_text_longer_than_max_length(runs):
    """A text of far more pieces than the run's max_length (64) gets a tag for every word, each tagged as
    it would be in a window of its own."""
    sentence = "Alice Becker flew to Paris on Monday ."
    [alone] = tag(runs["token"], [sentence])
    [long] = tag(runs["token"], [" ".join([sentence] * 30)])
    assert len(long.words) == 30 * len(alone.words)
    assert [w.text for w in long.words[:len(alone.words)]] == [w.text for w in alone.words]
    assert all(w.probability > 0 for w in long.words)  # every word was read by the model


def test_tag_reads_a_long_text_in_linear_time_with_a_progress_bar(runs, monkeypatch):
    """Issue 32: `tag` on 80k words took 81 s, 1 MB over 120 s with nothing on screen: every piece of a window
    read ``encoding.ids``, which builds the list of all the text's pieces again. Each list is read once per
    text now, and a text of many windows draws a progress bar (as a file does)."""
    import glassbert.tasks.tagger as tagger
    reads: list[str] = []

    class Counted:  # an Encoding that counts the reads of its whole-text lists
        def __init__(self, encoding):
            self._encoding = encoding

        def __getattr__(self, name):
            if name in ("ids", "word_ids", "type_ids", "offsets", "tokens"):
                reads.append(name)
            return getattr(self._encoding, name)

    class Backend:
        def __init__(self, backend):
            self._backend = backend

        def encode(self, *a, **k):
            return Counted(self._backend.encode(*a, **k))

    real_copy, real_forward, bars = tagger.truncating_copy, tagger.forward_sorted, []
    monkeypatch.setattr(tagger, "truncating_copy", lambda *a, **k: Backend(real_copy(*a, **k)))
    monkeypatch.setattr(tagger, "forward_sorted", lambda *a, **k: bars.append(a[5]) or real_forward(*a, **k))
    sentence = "Alice Becker flew to Paris on Monday ."
    [short] = tag(runs["token"], [sentence])
    [long] = tag(runs["token"], [" ".join([sentence] * 2000)])  # 16k words, ~300 windows of 64 pieces
    assert len(long.words) == 2000 * len(short.words)
    assert reads == ["ids", "word_ids"] * 2  # once per text (it was once per piece: 16k reads of 16k pieces)
    assert bars == [False, True]


def test_tag_command_formats_and_files(runs, tmp_path):
    result = run("tag", runs["token"], "Alice Becker flew to Paris on Monday.", "Hooli hired Pedro Costa.")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Alice Becker flew to Paris on Monday.\n")

    out = tmp_path / "tags.conll"
    result = run("tag", runs["token"], "Alice Becker flew to Paris on Monday.", "Zoe met Umar.", "--out", out)
    assert result.exit_code == 0 and "wrote 2 tagged texts" in result.output and "(conll)" in result.output
    assert [s.words for s in read_conll(out)] == [["Alice", "Becker", "flew", "to", "Paris", "on", "Monday", "."],
                                                  ["Zoe", "met", "Umar", "."]]
    before = out.read_bytes()
    result = run("tag", runs["token"], "Other text.", "--output", out)  # the old spelling, still accepted
    assert result.exit_code == 1 and "already exists: pass --overwrite" in result.output
    assert out.read_bytes() == before

    texts = tmp_path / "texts.txt"
    texts.write_text("Alice Becker flew to Paris.\n\nZoe met Umar.\n")
    result = run("tag", runs["token"], "--input", texts, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # (the progress bar is on stderr)
    assert [r["text"] for r in rows] == ["Alice Becker flew to Paris.", "Zoe met Umar."]
    assert rows[0]["words"][0] == {**rows[0]["words"][0], "text": "Alice", "start": 0, "end": 5}
    assert format_tags(tag(runs["token"], input=texts), "jsonl") == result.stdout


@pytest.mark.parametrize("args, message", [
    (["{token}"], "give TEXTS or --input FILE"),
    (["{qa}", "Zoe met Umar."], "was fine-tuned for task 'qa', not 'token': `glassbert answer` applies it"),
    (["{classify}", "x"], "was fine-tuned for task 'classify', not 'token': `glassbert classify` applies it"),
    (["minilm", "x"], "is not fine-tuned for task 'token': it has no glassbert_task.json"),
    (["{token}", "x", "--format", "xml"], "Invalid value for '--format'"),
    (["{token}", "x", "--input", "{ner_test}"], "give TEXTS or --input FILE, not both"),
])
def test_tag_bad_input(runs, args, message):
    result = run("tag", *(a.format(**runs) for a in args))
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


# ─── answer ─────────────────────────────────────────────────────────────────────────────────
def test_answer_gives_the_evaluations_answers_with_their_spans(runs):
    """answer() on the dev file reproduces the evaluation's predictions and scores (the same windows and
    decoding: the run's max_length, doc_stride, n_best, max_answer_length)."""
    examples = read_squad(runs["qa_dev"])
    tok = Tokenizer.from_pretrained(runs["qa"])
    model = BertForQuestionAnswering.from_pretrained(runs["qa"])
    settings = json.loads((runs["qa"] / TASK_FILE).read_text())
    assert (settings["max_length"], settings["doc_stride"]) == (40, 16)
    features = prepare_qa_features(examples, tok, 40, 16)
    assert len(features) > len(examples)  # some contexts take two windows
    expected = evaluate_qa(model, features, examples, tok.pad_token_id)

    result = answer(runs["qa"], input=runs["qa_dev"])
    assert result.predictions() == expected.details["predictions"]
    assert result.scores == pytest.approx(expected.metrics)
    by_id = {ex.id: ex for ex in examples}
    for a in result.answers:
        assert 1 <= len(a.candidates) <= 20
        assert [c.score for c in a.candidates] == sorted((c.score for c in a.candidates), reverse=True)
        assert all(by_id[a.id].context[c.start:c.end] == c.text for c in a.candidates)


def test_answer_command_on_a_context_and_on_a_squad_file(runs, tmp_path):
    context = "Zoe Weber was born in Lima in 1931. Umar Costa bought a kayak in Oslo."
    result = run("answer", runs["qa"], "--question", "Where was Zoe Weber born?", "--question", "Who bought a kayak?",
                 "--context", context, "--top-k", 3)
    assert result.exit_code == 0, result.output
    assert "[q1] Where was Zoe Weber born?\n  1. " in result.output and "[q2] Who bought a kayak?" in result.output
    assert result.output.count("  3. ") == 2 and "characters " in result.output

    predictions, nbest = tmp_path / "predictions.json", tmp_path / "nbest.json"
    result = run("answer", runs["qa"], "--input", runs["qa_dev"], "--out", predictions, "--nbest-out", nbest,
                 "--top-k", 2)
    assert result.exit_code == 0, result.output
    assert "exact match" in result.output
    ids = [ex.id for ex in read_squad(runs["qa_dev"])]
    written = json.loads(predictions.read_text())
    assert list(written) == ids and written == answer(runs["qa"], input=runs["qa_dev"]).predictions()
    candidates = json.loads(nbest.read_text())
    assert list(candidates) == ids and all(len(c) == 2 for c in candidates.values())
    assert [c[0]["text"] for c in candidates.values()] == list(written.values())
    assert set(candidates[ids[0]][0]) == {"text", "probability", "start_logit", "end_logit", "score", "start", "end"}

    before = predictions.read_bytes()
    result = run("answer", runs["qa"], "--input", runs["qa_dev"], "--output", predictions)  # the old spelling
    assert result.exit_code == 1 and "--out " in result.output and "already exists" in result.output
    assert predictions.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["{qa}", "--question", "Who?"], "missing --context"),
    (["{qa}", "--context", "Zoe met Umar."], "missing --question"),
    (["{qa}"], "give --question and --context, or --input FILE"),
    (["{qa}", "--question", "Who?", "--context", " "], "the context is empty"),
    (["{qa}", "--input", "{qa_dev}", "--question", "Who?"], "not both"),
    (["{token}", "--question", "Who?", "--context", "Zoe."], "fine-tuned for task 'token', not 'qa': `glassbert tag`"),
    (["minilm", "--question", "Who?", "--context", "Zoe."], "is not fine-tuned for task 'qa'"),
    (["{qa}", "--input", "{bad_json}"], "line 2 column 1: invalid JSON"),
    (["{qa}", "--input", "{a_csv}"], 'invalid JSON (Expecting value): expected SQuAD v1.1 JSON ({"version": "1.1"'),
    (["{qa}", "--input", "{not_squad}"], "missing key 'data'"),
    (["{qa}", "--question", "Who?", "--context", "Zoe.", "--top-k", "0"], "0 is not in the range x>=1"),
])
def test_answer_bad_input(runs, tmp_path, args, message):
    (tmp_path / "bad.json").write_text('{"data": [\n')
    (tmp_path / "other.json").write_text('{"version": "1.1"}\n')
    (tmp_path / "a.csv").write_text("text,label\nfine,1\n")
    paths = {**runs, "bad_json": tmp_path / "bad.json", "not_squad": tmp_path / "other.json", "a_csv": tmp_path / "a.csv"}
    result = run("answer", *(a.format(**paths) for a in args))
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output
