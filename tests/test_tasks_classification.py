"""Classification task data: CSV/TSV/JSONL readers (lines kept), encoding, dynamic padding; synthetic sentiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from glassbert.synthetic import make_sentiment
from glassbert.tasks.classification import encode_classification, read_classification
from glassbert.tasks.common import Collator
from glassbert.tokenizer import pad_rows
from helpers_tasks import hf_tok, tok, write  # noqa: F401  (fixtures)


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


def test_pad_rows_and_collator_dynamic_padding(tok) -> None:
    items = [
        {"input_ids": torch.tensor([101, 7, 102]), "token_type_ids": torch.tensor([0, 0, 0]),
         "attention_mask": torch.tensor([1, 1, 1]), "labels": torch.tensor(1)},
        {"input_ids": torch.tensor([101, 102]), "token_type_ids": torch.tensor([0, 0]),
         "attention_mask": torch.tensor([1, 1]), "labels": torch.tensor(0)},
    ]
    batch = pad_rows(items, pad_id=5)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 5]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]
    assert Collator(5)(items, torch.Generator())["input_ids"].tolist() == batch["input_ids"].tolist()
    with pytest.raises(ValueError, match="empty batch"):
        pad_rows([], 0)


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


def test_make_sentiment_labels_follow_the_final_adjective() -> None:
    from glassbert.synthetic import NEGATIVE, POSITIVE

    rows = make_sentiment(200, seed=0)
    assert rows == make_sentiment(200, seed=0)
    assert 60 < sum(label == "positive" for _, label in rows) < 140
    for text, label in rows:
        last = [w for w in text.split() if w in POSITIVE or w in NEGATIVE][-1]
        assert (last in POSITIVE) == (label == "positive")
