"""Tokenizer: ids identical to transformers' BertTokenizerFast on the MiniLM vocab; batches; training."""
from __future__ import annotations

import logging
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glassbert as gb
from glassbert.errors import InputError

transformers = pytest.importorskip("transformers")

CORPUS = [
    "I love cats!", "He hates pineapple pizza.", "Café au lait, naïve façade — déjà vu.",
    "ÀÉÎÕÜ ÅÆØ ß ſ ﬁ", "日本語のテキストと中文文本。", "한국어 문장입니다", "Emoji 😀🎉👍🏽 and ❤️ hearts",
    "control\x00chars\x07here\x1b[31m", "tabs\tand\nnewlines\r\nmixed", "zero\u200bwidth\u200djoin",
    "a" * 150, "supercalifragilisticexpialidocious antidisestablishmentarianism", "", "   \t\n  ",
    "U.S.A. costs $3.50 (approx.) -- e-mail me@example.com!", "[MASK] is a special token, [CLS] too",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "Ελληνικά και русский текст", "مرحبا بالعالم", "🙂" * 40,
]


@pytest.fixture(scope="module")
def pair(minilm_path, tmp_path_factory):
    # build transformers' tokenizer from vocab.txt alone, so both sides start from the same vocabulary
    d = tmp_path_factory.mktemp("vocab")
    shutil.copy(minilm_path / "vocab.txt", d / "vocab.txt")
    shutil.copy(minilm_path / "tokenizer_config.json", d / "tokenizer_config.json")
    hf = transformers.BertTokenizerFast.from_pretrained(d)
    return gb.Tokenizer.from_vocab(d / "vocab.txt", lowercase=True), gb.Tokenizer.from_pretrained(minilm_path), hf


def test_ids_identical_to_transformers_on_varied_corpus(pair):
    from_vocab, from_dir, hf = pair
    for text in CORPUS:
        want = hf(text)["input_ids"]
        assert from_vocab.encode(text) == want, text
        assert from_dir.encode(text) == want, text


def test_pairs_and_batches_match_transformers(pair):
    tok, _, hf = pair
    a, b = CORPUS[:6], CORPUS[6:12]
    ours = tok(a, b, padding=True)
    ref = hf(a, b, padding=True, return_tensors="pt")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(ours[key], ref[key]), key


def test_truncation_longest_first_with_warning(pair, caplog):
    tok, _, hf = pair
    long_a, long_b = "word " * 300, "other " * 50
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        ours = tok([long_a], [long_b], max_length=64)
    # a logged line (no source line of the caller under it, as warnings.warn printed from the CLI)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("glassbert", "WARNING", "1 of 1 inputs were longer than 64 tokens and were truncated (longest first)")]
    ref = hf([long_a], [long_b], max_length=64, truncation="longest_first", return_tensors="pt")
    assert ours["input_ids"].shape == (1, 64)
    assert torch.equal(ours["input_ids"], ref["input_ids"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        assert tok("x " * 2000)["input_ids"].shape == (1, 512)  # never an index error
    assert "longer than 512 tokens and were truncated" in caplog.text


def test_padding_modes_and_extras(pair):
    tok, _, _ = pair
    b = tok(["I love cats!", "He hates pineapple pizza."], padding="max_length", max_length=12, return_offsets=True)
    assert b.input_ids.shape == (2, 12)
    assert b.attention_mask[0].tolist() == [1] * 6 + [0] * 6
    assert b.special_tokens_mask[0, 0] == 1 and b.special_tokens_mask[0, 1] == 0
    assert b.offsets[0][1] == (0, 1)   # "i"
    assert b.offsets[0][3] == (7, 11)  # "cats"
    with pytest.raises(ValueError, match="different lengths"):
        tok(["a", "a b c"], padding=False)
    with pytest.raises(ValueError, match="no texts given"):
        tok([])
    with pytest.raises(TypeError, match="text 1 is a int"):
        tok(["ok", 3])
    with pytest.raises(ValueError, match="2 texts but 1 text pairs"):
        tok(["a", "b"], ["c"])


def test_decode_and_conversions(pair):
    tok, _, _ = pair
    ids = tok.encode("He hates pineapple pizza.")
    assert tok.decode(ids) == "he hates pineapple pizza."
    assert tok.convert_ids_to_tokens(ids)[3:5] == ["pine", "##apple"]
    assert tok.convert_tokens_to_ids(["[MASK]", "nonexistent-token"]) == [tok.mask_token_id, tok.unk_token_id]
    assert tok.encode("the [MASK] sat")[2] == tok.mask_token_id  # special tokens in text stay whole


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=60))
def test_property_arbitrary_unicode_agrees(pair, text):
    tok, _, hf = pair
    assert tok.encode(text) == hf(text)["input_ids"]
    batch = tok([text, text + " x"], padding=True)
    assert batch["input_ids"].shape[0] == 2


def test_train_vocab_and_round_trip(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(["the cat chased the mouse", "it was a fast chase", "please go to the store",
                                 "buy me some milk", "the mouse ran quickly"] * 50))
    tok = gb.Tokenizer.train([corpus], vocab_size=120, show_progress=False)
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.tokenize("the cat chased") == ["the", "cat", "chased"]
    tok.save_pretrained(tmp_path / "tok")
    again = gb.Tokenizer.from_pretrained(tmp_path / "tok")
    assert again.encode("the mouse ran to the store") == tok.encode("the mouse ran to the store")
    hf = transformers.BertTokenizerFast.from_pretrained(tmp_path / "tok")
    assert hf("the mouse ran to the store")["input_ids"] == tok.encode("the mouse ran to the store")
    (tmp_path / "tok" / "tokenizer.json").unlink()  # vocab.txt alone
    assert gb.Tokenizer.from_pretrained(tmp_path / "tok").encode("buy milk") == tok.encode("buy milk")


def test_train_from_strings_and_bad_input(tmp_path):
    tok = gb.Tokenizer.train(["hello world"] * 20, vocab_size=60, show_progress=False, min_frequency=1)
    assert "hello" in tok.vocab
    with pytest.raises(FileNotFoundError, match="missing files"):
        gb.Tokenizer.train([tmp_path / "nope.txt"], files=True)
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or vocab.txt"):
        gb.Tokenizer.from_pretrained(tmp_path)


def test_word_level_vocab_for_toy_models(caplog):
    tok = gb.Tokenizer.from_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "chased"])
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        assert tok("the cat chased the dog")["input_ids"].tolist() == [[2, 5, 6, 7, 5, 1, 3]]
    assert caplog.records == []


# ─── bad input: one InputError that says what and where ─────────────────────────────────────
@pytest.mark.parametrize("max_length, pair_text, message", [
    (0, None, r"max_length must be an integer >= 2 \(\[CLS\] text \[SEP\]\), got 0"),
    (-1, None, r"max_length must be an integer >= 2 .*got -1"),
    (1, None, r"max_length must be an integer >= 2 .*got 1"),
    (2, "b", r"max_length must be an integer >= 3 \(\[CLS\] text \[SEP\] pair \[SEP\]\), got 2"),
    (True, None, r"max_length must be an integer >= 2 .*got True"),
    (8.0, None, r"max_length must be an integer >= 2 .*got 8\.0"),
])
def test_max_length_is_none_or_enough_for_the_special_tokens(pair, max_length, pair_text, message):
    tok = pair[0]
    with pytest.raises(InputError, match=message):
        tok(["a"], None if pair_text is None else [pair_text], max_length=max_length)


def test_smallest_max_length_keeps_the_special_tokens(pair, caplog):
    tok = pair[0]
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        assert tok.convert_ids_to_tokens(tok(["hello world"], max_length=2)["input_ids"][0]) == ["[CLS]", "[SEP]"]
        assert tok.convert_ids_to_tokens(tok(["hello"], ["world"], max_length=3)["input_ids"][0]) == \
            ["[CLS]", "[SEP]", "[SEP]"]


def test_text_with_bytes_that_are_not_utf8_names_the_text(pair):
    tok = pair[0]
    broken = b"caf\xff".decode("utf-8", "surrogateescape")  # how Python hands over such a CLI argument
    with pytest.raises(InputError, match=r"text 1 holds bytes that are not UTF-8 \(byte 0xff at character 3\)"):
        tok(["fine", broken])
    with pytest.raises(InputError, match=r"text pair 0 holds bytes that are not UTF-8"):
        tok(["fine"], [broken])
    with pytest.raises(InputError, match=r"text 0 holds bytes that are not UTF-8"):
        tok.encode(broken)


@pytest.mark.parametrize("name, content, message", [
    ("vocab.txt", b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncaf\xe9\n",
     r"vocab\.txt line 7: byte 0xe9 at column 4 is not UTF-8"),
    ("tokenizer_config.json", b'{"do_lower_case": true,\n "model_max_length": 512,,}',
     r"tokenizer_config\.json line 2 column 26: invalid JSON"),
    ("tokenizer_config.json", b'{"unk_token": "[UNK\xff]"}', r"tokenizer_config\.json line 1: byte 0xff"),
    ("tokenizer_config.json", b'{"model_max_length": 0}',
     r"tokenizer_config\.json: key 'model_max_length' is 0, expected an integer >= 2"),
    ("tokenizer_config.json", b'{"model_max_length": "big"}', r"key 'model_max_length' is 'big', expected an integer"),
    ("tokenizer_config.json", b'{"model_max_length": 1.5}', r"key 'model_max_length' is 1\.5, expected an integer"),
    ("tokenizer_config.json", b'{"model_max_length": NaN}', r"key 'model_max_length' is nan, expected an integer"),
    ("tokenizer_config.json", b'{"unk_token": ["[UNK]"]}', r"tokenizer_config\.json: key 'unk_token' is \['\[UNK\]'\]"),
    ("tokenizer.json", b'{\n"version": "1.0",\n"x": "\xff"}',
     r"tokenizer\.json line 3: byte 0xff at column 7 is not UTF-8"),
    ("tokenizer.json", b'{\n"version": "1.0"\n"x": 1}', r"tokenizer\.json line 3 column 1: invalid JSON"),
])
def test_tokenizer_files_errors_name_file_and_line(minilm_path, tmp_path, name, content, message):
    shutil.copy(minilm_path / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message):
        gb.Tokenizer.from_pretrained(tmp_path)


def test_transformers_no_limit_model_max_length_means_512(minilm_path, tmp_path):
    shutil.copy(minilm_path / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text('{"model_max_length": 1000000000000000019884624838656}')
    assert gb.Tokenizer.from_pretrained(tmp_path).model_max_length == 512


def test_duplicate_vocab_token_is_logged_with_its_line(tmp_path, caplog):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncat\ncat\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        tok = gb.Tokenizer.from_vocab(vocab)
    assert tok.vocab["cat"] == 5
    assert f"{vocab} line 7: duplicate token 'cat'" in caplog.text


@pytest.mark.parametrize("kwargs, message", [
    (dict(vocab_size=5), r"vocab_size must be an integer >= 6 \(the 5 special tokens and at least one word piece\), "
                         r"got 5"),
    (dict(vocab_size="8000"), r"vocab_size must be an integer >= 6 .*got '8000'"),
    (dict(min_frequency=-1), r"min_frequency must be an integer >= 0, got -1"),
])
def test_train_checks_its_numbers(kwargs, message):
    with pytest.raises(InputError, match=message):
        gb.Tokenizer.train(["hello world"] * 5, show_progress=False, **kwargs)


def test_model_max_length_must_fit_the_special_tokens():
    with pytest.raises(InputError, match=r"model_max_length must be an integer >= 2, got 0"):
        gb.Tokenizer.from_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"], model_max_length=0)


def test_repr_says_what_the_tokenizer_is(pair):
    ours = pair[1]
    assert repr(ours) == "Tokenizer(WordPiece, vocab_size=30522, lowercase=True, model_max_length=512)"
    cased = gb.Tokenizer.from_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A"], lowercase=False)
    assert repr(cased) == "Tokenizer(WordPiece, vocab_size=6, lowercase=False, model_max_length=512)"
