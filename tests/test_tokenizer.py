"""Tokenizer: ids identical to transformers' BertTokenizerFast on the MiniLM vocab; batches; training."""
from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glassbert as gb

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


def test_truncation_longest_first_with_warning(pair):
    tok, _, hf = pair
    long_a, long_b = "word " * 300, "other " * 50
    with pytest.warns(UserWarning, match="truncated"):
        ours = tok([long_a], [long_b], max_length=64)
    ref = hf([long_a], [long_b], max_length=64, truncation="longest_first", return_tensors="pt")
    assert ours["input_ids"].shape == (1, 64)
    assert torch.equal(ours["input_ids"], ref["input_ids"])
    with pytest.warns(UserWarning):
        assert tok("x " * 2000)["input_ids"].shape == (1, 512)  # never an index error


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
    with pytest.raises(TypeError, match="input 1 is a int"):
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


def test_word_level_vocab_for_toy_models():
    tok = gb.Tokenizer.from_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "chased"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tok("the cat chased the dog")["input_ids"].tolist() == [[2, 5, 6, 7, 5, 1, 3]]
