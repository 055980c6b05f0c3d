"""QA task data: SQuAD reader (lines kept), windows against transformers' overflow, n-best span decoding;
synthetic QA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glassbert.errors import InputError
from glassbert.synthetic import make_qa, write_squad
from glassbert.tasks.qa import (
    SquadExample, decode_nbest, decode_spans, load_json_with_lines, prepare_qa_features, qa_dataset, read_squad,
)
from helpers_tasks import hf_tok, tok, write  # noqa: F401  (fixtures)


def test_squad_round_trip(tmp_path: Path) -> None:
    examples = make_qa(12, seed=4)
    assert read_squad(write_squad(examples, tmp_path / "qa.json")) == examples
    for example in examples:
        text, start = example.answers[0]
        assert example.context[start : start + len(text)] == text


def _squad_file(tmp_path: Path, answer: dict, qa_extra: dict | None = None) -> Path:
    qa = {"id": "q-7", "question": "Where?", "answers": [answer], **(qa_extra or {})}
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "Alice lives in Paris.", "qas": [qa]}]}]}
    return write(tmp_path / "dev-v1.1.json", json.dumps(data, indent=1))


def test_squad_answer_not_in_context_names_file_and_id(tmp_path: Path) -> None:
    path = _squad_file(tmp_path, {"text": "Paris", "answer_start": 3})
    with pytest.raises(ValueError) as error:
        read_squad(path)
    message = str(error.value)
    assert "dev-v1.1.json" in message and "'q-7'" in message and "'Paris'" in message
    assert "answer_start 3" in message and "'ce li'" in message
    assert read_squad(_squad_file(tmp_path, {"text": "Paris", "answer_start": 15}))[0].answers == [("Paris", 15)]


def test_squad_structural_errors(tmp_path: Path) -> None:
    path = _squad_file(tmp_path, {"text": "Paris"})
    id_line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"q-7"' in text)
    with pytest.raises(ValueError, match=rf"dev-v1\.1\.json line {id_line}: question id 'q-7': missing key 'answer_start'"):
        read_squad(path)
    bad = write(tmp_path / "broken.json", '{"data": [\n  {"title": \n')
    with pytest.raises(ValueError, match=r"broken\.json line 3 column 1: invalid JSON \(Expecting value\)"):
        read_squad(bad)
    with pytest.raises(ValueError, match=r"empty\.json: file is empty"):
        read_squad(write(tmp_path / "empty.json", ""))
    with pytest.raises(ValueError, match=r"nodata\.json: missing key 'data'"):
        read_squad(write(tmp_path / "nodata.json", "{}"))


def test_squad_examples_keep_the_line_of_their_id(tmp_path: Path) -> None:
    examples = make_qa(5, seed=2)
    path = write_squad(examples, tmp_path / "qa.json")
    lines = path.read_text().splitlines()
    for example in read_squad(path):
        assert f'"{example.id}"' in lines[example.line - 1]
    text = '{"a": [1, {"b":\n "x",\n "c": {}}],\n "d": 2}'
    root = load_json_with_lines(text)
    assert root == json.loads(text)
    assert (root.line, root.key_lines) == (1, {"a": 1, "d": 4})
    assert (root["a"][1].line, root["a"][1].key_lines) == (1, {"b": 2, "c": 3})


def _long_example() -> SquadExample:
    passages = {e.context for e in make_qa(150, seed=11)}
    context = " ".join(sorted(passages))
    answer = "unbelievably ornate lighthouse"
    marker = "The strangest thing in the archive is an " + answer + "."
    middle = len(context) // 2
    cut = context.index(". ", middle) + 2
    context = context[:cut] + marker + " " + context[cut:]
    start = context.index(answer)
    return SquadExample("long-1", "What is the strangest thing in the archive?", context, [(answer, start)])


def test_qa_windows_match_transformers_overflow(tok, hf_tok) -> None:
    examples = [_long_example(), make_qa(1, seed=5)[0]]
    max_length, stride = 128, 32
    features = prepare_qa_features(examples, tok, max_length=max_length, doc_stride=stride)
    reference = hf_tok(
        [e.question for e in examples], [e.context for e in examples], truncation="only_second",
        max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    assert len(features) == len(reference["input_ids"]) > 5
    for i, feature in enumerate(features):
        assert feature.example_index == reference["overflow_to_sample_mapping"][i]
        assert feature.input_ids == reference["input_ids"][i]
        assert feature.token_type_ids == reference["token_type_ids"][i]
        assert feature.attention_mask == reference["attention_mask"][i]
        sequence_ids = reference.sequence_ids(i)
        expected_offsets = [
            tuple(o) if s == 1 else None for o, s in zip(reference["offset_mapping"][i], sequence_ids)
        ]
        assert feature.offsets == expected_offsets
        assert len(feature.input_ids) <= max_length


def test_qa_positions_point_at_the_answer(tok) -> None:
    example = _long_example()
    text, start_char = example.answers[0]
    features = prepare_qa_features([example], tok, max_length=96, doc_stride=24)
    hits = 0
    for feature in features:
        context_offsets = [o for o in feature.offsets if o is not None]
        inside = context_offsets[0][0] <= start_char and context_offsets[-1][1] >= start_char + len(text)
        if not inside:
            assert (feature.start_position, feature.end_position) == (0, 0)
            continue
        hits += 1
        s, e = feature.start_position, feature.end_position
        assert 0 < s <= e
        assert example.context[feature.offsets[s][0] : feature.offsets[e][1]] == text
        assert tok.decode(feature.input_ids[s : e + 1]) == text.lower()
    assert hits >= 1
    # examples without answers get [CLS] positions everywhere
    unanswered = SquadExample("u", example.question, example.context, [])
    assert {(f.start_position, f.end_position) for f in prepare_qa_features([unanswered], tok, 96, 24)} == {(0, 0)}


def test_qa_question_cut_and_bad_stride(tok) -> None:
    example = make_qa(1, seed=0)[0]
    long_question = SquadExample("lq", " ".join(["why"] * 100), example.context, example.answers)
    feature = prepare_qa_features([long_question], tok, max_length=128, doc_stride=16, max_query_length=10)[0]
    assert feature.token_type_ids.count(0) == 12  # [CLS] + 10 question pieces + [SEP]
    with pytest.raises(ValueError, match=r"question id 'long-1'.*doc_stride 128 must be smaller"):
        prepare_qa_features([_long_example()], tok, max_length=128, doc_stride=128)


def _two_window_setup(tok):
    example = _long_example()
    features = prepare_qa_features([example, make_qa(1, seed=5)[0]], tok, max_length=96, doc_stride=24)
    length = max(len(f.input_ids) for f in features)
    start = np.full((len(features), length), -5.0)
    end = np.full((len(features), length), -5.0)
    return example, features, start, end


def test_decode_spans_picks_best_valid_span_across_windows(tok) -> None:
    example, features, start, end = _two_window_setup(tok)
    answer_feature = next(i for i, f in enumerate(features) if f.start_position > 0 and f.example_index == 0)
    s, e = features[answer_feature].start_position, features[answer_feature].end_position
    start[answer_feature, s], end[answer_feature, e] = 6.0, 6.0
    # decoys that must be skipped: [CLS], question tokens, end before start, a span that is too long
    other = next(
        i for i, f in enumerate(features)
        if f.example_index == 0 and i != answer_feature and len(f.input_ids) == 96
    )
    start[other, 0] = end[other, 0] = 50.0
    start[other, 2] = end[other, 3] = 40.0  # question tokens
    ctx = features[other].token_type_ids.index(1)  # first context token
    start[other, ctx + 5], end[other, ctx + 1] = 30.0, 30.0  # end < start
    start[other, ctx + 6], end[other, ctx + 46] = 20.0, 20.0  # 41 tokens > max_answer_length
    best = decode_spans(torch.tensor(start), torch.tensor(end), features, [example, make_qa(1, seed=5)[0]])
    assert best["long-1"] == "unbelievably ornate lighthouse"
    nbest = decode_nbest(start, end, features, [example, make_qa(1, seed=5)[0]], n_best=5)
    top = nbest["long-1"]
    assert len(top) == 5 and top[0].text == best["long-1"]
    assert top[0].score == pytest.approx(12.0) and top[0].feature_index == answer_feature
    assert [c.score for c in top] == sorted((c.score for c in top), reverse=True)
    assert sum(c.probability for c in top) == pytest.approx(1.0)
    # with a longer max_answer_length the long span (ctx+5 .. ctx+46, score 30 + 20) wins
    longer = decode_spans(start, end, features, [example, make_qa(1, seed=5)[0]], max_answer_length=60)
    offsets = features[other].offsets
    assert longer["long-1"] == example.context[offsets[ctx + 5][0] : offsets[ctx + 46][1]]


def test_decode_spans_without_valid_span_returns_empty(tok) -> None:
    example, features, start, end = _two_window_setup(tok)
    with pytest.raises(ValueError, match="features but"):
        decode_spans(start[:1], end, features, [example])
    # all mass on [CLS] and question tokens, n_best=1 leaves nothing valid
    start[:, 0] = end[:, 0] = 100.0
    assert decode_spans(start, end, features, [example, make_qa(1, seed=5)[0]], n_best=1)["long-1"] == ""


def test_qa_dataset_collate(tok) -> None:
    features = prepare_qa_features(make_qa(5, seed=1), tok, max_length=64, doc_stride=16)
    dataset = qa_dataset(features, tok)
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"}
    assert batch["start_positions"].tolist() == [f.start_position for f in features]
    assert batch["input_ids"].shape == (len(features), max(len(f.input_ids) for f in features))


def test_make_qa_answers_depend_on_the_question() -> None:
    examples = make_qa(200, seed=3)
    assert examples == make_qa(200, seed=3) and len(examples) == 200
    assert len({e.id for e in examples}) == 200
    by_context: dict[str, set[str]] = {}
    for example in examples:
        (text, start), = example.answers
        assert example.context[start : start + len(text)] == text
        assert text not in example.question  # the answer is never given away
        by_context.setdefault(example.context, set()).add(text)
    # several facts per passage: most passages answer several different questions differently
    assert len(by_context) < 60 and sum(len(a) >= 3 for a in by_context.values()) > 0.8 * len(by_context)
    kinds = {("year" if t.isdigit() else "name") for e in examples for t, _ in e.answers}
    assert kinds == {"year", "name"}


def test_squad_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_bytes(b'{"data": [\n  {"title": "caf\xe9",\n   "paragraphs": []}]}\n')
    with pytest.raises(InputError, match=r"train\.json line 2: byte 0xe9 at column 17 is not UTF-8"):
        read_squad(path)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(max_length=3), r"max_length must be an integer >= 4 \(\[CLS\] question \[SEP\] context \[SEP\]\), got 3"),
    (dict(max_length=0), r"max_length must be an integer >= 4 .*got 0"),
    (dict(doc_stride=-8), r"doc_stride must be an integer >= 0, got -8"),
    (dict(max_query_length=0), r"max_query_length must be an integer >= 1, got 0"),
])
def test_qa_lengths_are_checked(tok, kwargs, pattern) -> None:
    with pytest.raises(InputError, match=pattern):
        prepare_qa_features(make_qa(1, seed=0), tok, **{"max_length": 96, "doc_stride": 24, **kwargs})


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(n_best=0), r"n_best must be an integer >= 1, got 0"),
    (dict(max_answer_length=-1), r"max_answer_length must be an integer >= 1, got -1"),
])
def test_decode_lengths_are_checked(tok, kwargs, pattern) -> None:
    example, features, start, end = _two_window_setup(tok)
    with pytest.raises(InputError, match=pattern):
        decode_spans(start, end, features, [example, make_qa(1, seed=5)[0]], **kwargs)


def test_prepare_says_a_bad_option_is_the_options_fault(tok, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from glassbert.tasks.qa import prepare

    train = write_squad(make_qa(4, seed=1), tmp_path / "train.json")
    args = SimpleNamespace(train=train, eval=None, doc_stride=-1, batch_size=2)
    with pytest.raises(InputError, match=r"^doc_stride must be an integer >= 0, got -1$"):
        prepare(args, tok, 96)
