"""Classification task data: CSV/TSV/JSONL readers (lines kept), encoding, dynamic padding; synthetic sentiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from glassbert.errors import InputError
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


# ─── bad tables: one InputError naming file, line and column ────────────────────────────────
LONG = "word " * 40_000  # 200,000 characters: over csv's default field limit of 131,072


def _toy_classifier(directory: Path) -> Path:
    """A tiny untrained classifier directory (config with id2label, weights, vocabulary)."""
    from glassbert.config import BertConfig
    from glassbert.heads import BertForSequenceClassification
    from glassbert.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "word", "good", "bad"])
    config = BertConfig.preset("toy", vocab_size=8, max_position_embeddings=32, id2label={0: "neg", 1: "pos"})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory, tokenizer=tokenizer)
    return directory


def test_csv_cells_longer_than_csvs_default_limit(tmp_path: Path) -> None:
    from glassbert.tasks.classifier import read_texts

    path = write(tmp_path / "long.csv", f'text,label\n"{LONG}",pos\nshort,neg\n')
    data = read_classification(path, "text", "label")
    assert data.texts == [LONG, "short"] and data.lines == [2, 3]
    assert read_texts(path, "text", None) == ([LONG, "short"], None)


def test_classify_reads_long_cells_and_keeps_empty_texts(tmp_path: Path) -> None:
    from glassbert.tasks.classifier import classify

    model = _toy_classifier(tmp_path / "model")
    path = write(tmp_path / "in.csv", f'text,other\n"{LONG}",x\n,y\ngood,z\n')
    rows = classify(model, input=path, output=tmp_path / "out.csv", progress=False)
    assert [row["text"] for row in rows] == [LONG, "", "good"]  # an empty text gets its prediction too
    assert all(row["label"] in ("neg", "pos") for row in rows)


def test_classify_checks_max_length_and_text_bytes(tmp_path: Path) -> None:
    from glassbert.tasks.classifier import classify

    model = _toy_classifier(tmp_path / "model")
    for bad in (0, -1, 2):
        with pytest.raises(InputError, match=rf"max_length must be an integer >= 3 .*got {bad}"):
            classify(model, texts=["good"], max_length=bad)
    broken = b"bad \xff".decode("utf-8", "surrogateescape")
    with pytest.raises(InputError, match=r"text 1 holds bytes that are not UTF-8 \(byte 0xff at character 4\)"):
        classify(model, texts=["good", broken])
    with pytest.raises(InputError, match=r"text pair 0 holds bytes that are not UTF-8"):
        classify(model, texts=["good"], text_pairs=[broken])


@pytest.mark.parametrize(("name", "text", "pattern"), [
    ("empty.csv", "text,label\ngood,pos\nbad,\n", r"empty\.csv line 3: empty label in column 'label'; every row needs"),
    ("blank.tsv", "text\tlabel\ngood\tpos\nbad\t  \n", r"blank\.tsv line 3: empty label in column 'label'"),
    ("empty.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": ""}\n',
     r"empty\.jsonl line 2: empty label in key 'label'"),
    ("null.jsonl", '{"text": "a", "label": "pos"}\n\n{"text": "b", "label": null}\n',
     r"null\.jsonl line 3: empty label in key 'label'"),
    ("missing.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b"}\n', r"missing\.jsonl line 2: no key 'label'"),
])
def test_empty_label_is_refused_not_a_class_named_empty(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(InputError, match=pattern):
        read_classification(path, "text", "label")
    with pytest.raises(InputError, match=pattern):  # an evaluation file needs its gold labels just the same
        read_classification(path, "text", "label", labels=["neg", "pos"])


def test_empty_text_is_an_input_like_any_other(tmp_path: Path, tok) -> None:
    path = write(tmp_path / "train.csv", 'text,label\n"",neg\ngood,pos\n')
    data = read_classification(path, "text", "label")
    assert data.texts == ["", "good"] and data.label_ids == [0, 1]
    assert tok.convert_ids_to_tokens(encode_classification(data, tok, 16).items[0]["input_ids"]) == ["[CLS]", "[SEP]"]


@pytest.mark.parametrize(("name", "content", "pattern"), [
    ("latin.csv", b"text,label\ngood,pos\ncaf\xe9,neg\n", r"latin\.csv line 3: byte 0xe9 at column 4 is not UTF-8"),
    ("latin.jsonl", b'{"text": "a", "label": "pos"}\n{"text": "\xe9", "label": "neg"}\n',
     r"latin\.jsonl line 2: byte 0xe9 at column 11 is not UTF-8"),
])
def test_invalid_utf8_in_a_table_names_file_and_line(tmp_path: Path, name: str, content: bytes, pattern: str) -> None:
    from glassbert.tasks.classifier import read_texts

    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=pattern):
        read_classification(tmp_path / name, "text", "label")
    with pytest.raises(InputError, match=pattern):
        read_texts(tmp_path / name, "text", None)
    (tmp_path / "in.txt").write_bytes(b"one\ntwo\n\nthr\xffee\n")
    with pytest.raises(InputError, match=r"in\.txt line 4: byte 0xff at column 4 is not UTF-8"):
        read_texts(tmp_path / "in.txt", "text", None)


def test_a_row_csv_cannot_parse_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glassbert import textfiles

    monkeypatch.setattr(textfiles, "CSV_FIELD_LIMIT", 20)  # the one csv.Error left: a cell over the limit
    path = write(tmp_path / "c.csv", 'text,label\nok,pos\n"far too long\nfor this limit",neg\n')
    with pytest.raises(InputError, match=r"c\.csv line 3: malformed row \(field larger than field limit \(20\)\)"):
        read_classification(path, "text", "label")
