"""Tagging task data: CoNLL reader (lines kept), tag checks, first-piece label alignment; synthetic NER."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glassbert.errors import InputError
from glassbert.synthetic import make_ner, write_conll
from glassbert.tasks.tagging import (
    align_labels, check_tags, encode_token_classification, first_piece_tags, read_conll, tag_names,
)
from glassbert.tokenizer import IGNORE_INDEX
from helpers_tasks import hf_tok, minilm_tokenizer, tok, write  # noqa: F401  (fixtures)


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


def test_sentences_keep_their_lines_and_tag_errors_name_them(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.conll", "-DOCSTART- O\n\nAlice B-PER\nflew O\n\nBob B-PER\nsang O\nin O\nRome B-CITY\n")
    sentences = read_conll(path)
    assert [s.lines for s in sentences] == [[3, 4], [6, 7, 8, 9]]
    assert sentences[1].words == ["Bob", "sang", "in", "Rome"] and sentences[1].where(3) == f"{path} line 9"
    words, tags = sentences[0]
    assert (words, tags) == (["Alice", "flew"], ["B-PER", "O"])
    check_tags(sentences)
    with pytest.raises(ValueError, match=rf"{path} line 9: unknown tag 'B-CITY'; the training file has"):
        check_tags(sentences, known=["O", "B-PER", "B-LOC"])
    with pytest.raises(ValueError, match=rf"{path} line 9: word 3 'Rome': unknown tag 'B-CITY'"):
        encode_token_classification(sentences, minilm_tokenizer(), {"O": 0, "B-PER": 1}, 16)
    bad = write(tmp_path / "bad.conll", "Alice B-PER\nflew O\nhome PER\n")
    with pytest.raises(ValueError, match=rf"{bad} line 3: tag 'PER' is not BIO"):
        check_tags(read_conll(bad))


def test_read_conll_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_bytes(b"EU B-ORG\r\nrejects O\r\n\r\nM\xfcller B-PER\r\n")
    with pytest.raises(InputError, match=r"train\.conll line 4: byte 0xfc at column 2 is not UTF-8"):
        read_conll(path)
    path.write_bytes(b"EU B-ORG\r\nrejects O\r\n\r\nM\xc3\xbcller B-PER\r\n")
    assert read_conll(path) == [(["EU", "rejects"], ["B-ORG", "O"]), (["M\u00fcller"], ["B-PER"])]
    assert read_conll(path)[1].lines == [4]
