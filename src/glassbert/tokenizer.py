"""WordPiece tokenizer on the `tokenizers` library, configured exactly like transformers' BertTokenizerFast.

text ──normalize (clean, CJK spacing, lower-case, accents)──▶ pre-tokenize (whitespace + punctuation)
     ──WordPiece (greedy longest match, "##" continuations)──▶ [CLS] A [SEP] (B [SEP]) ──pad──▶ Batch
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as Backend

from .errors import InputError, MissingError
from .textfiles import parse_json, read_json_object, read_lines, read_text

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
DEFAULT_MAX_LENGTH = 512
IGNORE_INDEX = -100  # the label the losses skip (unmasked tokens, specials, padding): cross_entropy's default
log = logging.getLogger("glassbert")


class Batch(dict):
    """The model inputs as a dict of (B, T) LongTensors, so `model(**batch)` works.

    Extras ride along as attributes: `offsets` (per row, (start, end) character spans, (0, 0) for
    specials and padding), `special_tokens_mask` (B, T), `sequence_ids` (per row: 0, 1 or None),
    `encodings` (the raw `tokenizers.Encoding`s) and `truncated` (how many rows lost tokens).
    """

    offsets: list[list[tuple[int, int]]]
    special_tokens_mask: torch.Tensor
    sequence_ids: list[list[int | None]]
    encodings: list
    truncated: int

    @property
    def input_ids(self) -> torch.Tensor:
        return self["input_ids"]

    @property
    def attention_mask(self) -> torch.Tensor:
        return self["attention_mask"]

    @property
    def token_type_ids(self) -> torch.Tensor:
        return self["token_type_ids"]


def _build_backend(vocab: dict[str, int], lowercase: bool, specials: dict[str, str]) -> Backend:
    """The pipeline BertTokenizerFast builds from a vocab.txt."""
    for name, token in specials.items():
        if token not in vocab:
            raise InputError(f"vocabulary has no {name} {token!r}")
    backend = Backend(models.WordPiece(vocab, unk_token=specials["unk_token"], max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    _set_post_processor(backend, specials)
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials.values()])
    return backend


def _set_post_processor(backend: Backend, specials: dict[str, str]) -> None:
    cls, sep = specials["cls_token"], specials["sep_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, backend.token_to_id(cls)), (sep, backend.token_to_id(sep))],
    )


def _model_max_length(path: Path, value: object) -> int:
    """tokenizer_config.json's model_max_length: absent, null or transformers' huge "no limit"
    (int(1e30)) mean DEFAULT_MAX_LENGTH."""
    if value is None:
        return DEFAULT_MAX_LENGTH
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 2 \
            or (value < 1e9 and value != int(value)):
        raise InputError(f"{path}: key 'model_max_length' is {value!r}, expected an integer >= 2")
    return DEFAULT_MAX_LENGTH if value >= 1e9 else int(value)


def _special_token(path: Path, name: str, value: object) -> str:
    """A special token of tokenizer_config.json: a string, or transformers' {"content": …} form."""
    if isinstance(value, dict):
        value = value.get("content", SPECIAL_TOKENS[name])
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: key {name!r} is {value!r}, expected a token (a non-empty string)")
    return value


def _read_vocab(path: Path) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, token in enumerate(read_lines(path)):
        if token in vocab:
            log.warning("%s line %d: duplicate token %r (the first one keeps its id)", path, i + 1, token)
            continue
        vocab[token] = i
    if not vocab:
        raise InputError(f"{path}: empty vocabulary")
    return vocab


class Tokenizer:
    """A BERT WordPiece tokenizer. Build it with `from_pretrained`, `from_vocab` or `train`."""

    def __init__(self, backend: Backend, lowercase: bool = True,
                 specials: dict[str, str] | None = None, model_max_length: int = DEFAULT_MAX_LENGTH,
                 tokenizer_class: str = "BertTokenizer"):
        self.specials = dict(SPECIAL_TOKENS, **(specials or {}))
        self.tokenizer_class = tokenizer_class  # transformers' class, written back by save_pretrained
        self.backend = backend
        self.backend.no_padding()
        self.backend.no_truncation()
        self.do_lower_case = lowercase
        self.model_max_length = check_count("model_max_length", model_max_length, 2)
        self.vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        for name, token in self.specials.items():
            if token not in self.vocab:
                raise InputError(f"tokenizer has no {name} {token!r} in its vocabulary")
            setattr(self, f"{name}_id", self.vocab[token])
        self.special_ids = {self.vocab[t] for t in self.specials.values()}
        self._id_to_token = {i: t for t, i in self.vocab.items()}

    pad_token_id: int
    unk_token_id: int
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_vocab(cls, vocab: Sequence[str] | str | Path, lowercase: bool = True,
                   model_max_length: int = DEFAULT_MAX_LENGTH) -> "Tokenizer":
        """From a list of tokens (id = position) or a vocab.txt path."""
        if isinstance(vocab, (str, Path)):
            table = _read_vocab(Path(vocab))
        else:
            table = {}
            for token in vocab:
                table.setdefault(token, len(table))
        return cls(_build_backend(table, lowercase, SPECIAL_TOKENS), lowercase,
                   model_max_length=model_max_length)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "Tokenizer":
        """A directory with tokenizer.json, or vocab.txt (+ tokenizer_config.json for lower-casing).
        Any tokenizer.json whose post-processor packs [CLS] A [SEP] B [SEP] works (an ALBERT's SentencePiece
        Unigram too, with tokenizer_config.json naming its special tokens)."""
        from .modeldir import resolve_model_path  # aliases like "minilm"

        directory = resolve_model_path(path)
        if directory.is_file() and directory.suffix == ".txt":
            return cls.from_vocab(directory)
        cfg_path = directory / "tokenizer_config.json"
        cfg = read_json_object(cfg_path) if cfg_path.is_file() else {}
        lowercase = bool(cfg.get("do_lower_case", True))
        max_len = _model_max_length(cfg_path, cfg.get("model_max_length"))
        specials = dict(SPECIAL_TOKENS, **{k: _special_token(cfg_path, k, v) for k, v in cfg.items()
                                           if k in SPECIAL_TOKENS})
        tokenizer_class = cfg.get("tokenizer_class")
        tokenizer_class = tokenizer_class if isinstance(tokenizer_class, str) else "BertTokenizer"
        json_path = directory / "tokenizer.json"
        if json_path.is_file():
            text = read_text(json_path)
            parse_json(text, json_path)  # a syntax error names its line and column
            try:
                backend = Backend.from_str(text)
            except Exception as e:  # tokenizers raises a bare Exception on malformed files
                raise InputError(f"{json_path}: not a tokenizers file ({e})") from None
            if backend.normalizer is not None and "lowercase" in json.loads(backend.normalizer.__getstate__()):
                lowercase = bool(json.loads(backend.normalizer.__getstate__())["lowercase"])
            return cls(backend, lowercase, specials, max_len, tokenizer_class)
        if (directory / "vocab.txt").is_file():
            table = _read_vocab(directory / "vocab.txt")
            return cls(_build_backend(table, lowercase, specials), lowercase, specials, max_len)
        if (directory / "spiece.model").is_file():
            raise MissingError(
                f"{directory}: no tokenizer.json or vocab.txt, only spiece.model (a SentencePiece model, as published "
                f"ALBERTs ship), which glassbert does not read. Write the tokenizer.json once with transformers: "
                f"pip install sentencepiece protobuf, then python -c \"from transformers import AutoTokenizer; "
                f"AutoTokenizer.from_pretrained('{directory}').save_pretrained('{directory}')\"")
        raise MissingError(f"{directory}: no tokenizer.json or vocab.txt found")

    @classmethod
    def train(cls, texts: Iterable[str] | Sequence[str | Path], vocab_size: int = 8000,
              lowercase: bool = True, min_frequency: int = 2, files: bool | None = None,
              show_progress: bool = True) -> "Tokenizer":
        """Learn a WordPiece vocabulary from text files (paths) or an iterator of strings."""
        check_count("vocab_size", vocab_size, len(SPECIAL_TOKENS) + 1,
                    f"the {len(SPECIAL_TOKENS)} special tokens and at least one word piece")
        check_count("min_frequency", min_frequency, 0)
        backend = Backend(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"], max_input_chars_per_word=100))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress,
            special_tokens=list(SPECIAL_TOKENS.values()), continuing_subword_prefix="##")
        if isinstance(texts, (str, Path)):
            texts = [texts]
        items = list(texts) if isinstance(texts, Sequence) else texts
        if files is None:
            files = isinstance(items, list) and bool(items) and all(_is_path(t) for t in items)
        if files:
            missing = [str(p) for p in items if not Path(p).is_file()]
            if missing:
                raise MissingError(f"cannot train a vocabulary: missing files {missing[:5]}")
            backend.train([str(p) for p in items], trainer)
        else:
            backend.train_from_iterator(items, trainer)
        if backend.get_vocab_size() <= len(SPECIAL_TOKENS):
            raise InputError("cannot train a vocabulary: the training text is empty")
        vocab = backend.get_vocab()
        return cls(_build_backend(vocab, lowercase, SPECIAL_TOKENS), lowercase)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write vocab.txt (WordPiece), tokenizer.json, tokenizer_config.json and special_tokens_map.json
        into ``directory``, each file atomically (a crash leaves the old file or the new, never half)."""
        from .runfiles import atomic_write_json, atomic_write_text, atomic_write_with
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if isinstance(self.backend.model, models.WordPiece):  # a SentencePiece tokenizer has tokenizer.json only
            size = max(self._id_to_token) + 1
            atomic_write_text(d / "vocab.txt", "".join(self._id_to_token.get(i, f"[unused{i}]") + "\n"
                                                       for i in range(size)))
        config = {"tokenizer_class": self.tokenizer_class, "do_lower_case": self.do_lower_case,
                  "tokenize_chinese_chars": True, "strip_accents": None,
                  "model_max_length": self.model_max_length, **self.specials}
        atomic_write_json(d / "tokenizer_config.json", config, indent=2)
        atomic_write_json(d / "special_tokens_map.json", self.specials, indent=2)
        atomic_write_with(d / "tokenizer.json", lambda tmp: self.backend.save(str(tmp)))
        return d

    # -- single texts ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return max(self._id_to_token) + 1

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"Tokenizer(WordPiece, vocab_size={self.vocab_size}, lowercase={self.do_lower_case}, "
                f"model_max_length={self.model_max_length})")

    def tokenize(self, text: str) -> list[str]:
        return self.backend.encode(check_text(text, 0), add_special_tokens=False).tokens

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        if pair is None:
            return self.backend.encode(check_text(text, 0), add_special_tokens=add_special_tokens).ids
        return self.backend.encode(check_text(text, 0), check_text(pair, 0, "text pair"),
                                   add_special_tokens=add_special_tokens).ids

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return [self._id_to_token.get(int(i), self.specials["unk_token"]) for i in ids]

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    # -- batches ---------------------------------------------------------------------------
    def __call__(self, text: str | Sequence[str], text_pair: str | Sequence[str] | None = None, *,
                 padding: bool | str = True, max_length: int | None = None, truncation: bool = True,
                 return_offsets: bool = False, warn_truncation: bool = True) -> Batch:
        """Encode one text, a list of texts, or pairs → Batch of (B, T) tensors.

        padding: True/"longest" pads to the longest row, "max_length" to `max_length`, False
        requires rows of one length. truncation cuts longest-first to `max_length` (default the
        model's 512) and logs how many rows were cut (``warn_truncation=False``: the caller, which
        encodes in many batches, says it once from ``Batch.truncated``).
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise InputError("no texts given: pass at least one string")
        pairs = None
        if text_pair is not None:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(pairs) != len(texts):
                raise InputError(f"{len(texts)} texts but {len(pairs)} text pairs: give one pair per text")
        texts = [check_text(t, i) for i, t in enumerate(texts)]
        if pairs is not None:
            pairs = [check_text(b, i, "text pair") for i, b in enumerate(pairs)]
        inputs = texts if pairs is None else list(zip(texts, pairs))

        if max_length is not None:  # room for [CLS] A [SEP] (B [SEP])
            check_count("max_length", max_length, 2 if pairs is None else 3,
                        "[CLS] text [SEP]" if pairs is None else "[CLS] text [SEP] pair [SEP]")
        limit = self.model_max_length if max_length is None else max_length
        if padding == "max_length" and max_length is None:
            raise InputError("padding='max_length' needs max_length")
        if truncation:
            self.backend.enable_truncation(limit, strategy="longest_first")
        try:
            encodings = self.backend.encode_batch(inputs, add_special_tokens=True)
        finally:
            self.backend.no_truncation()
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated and warn_truncation:
            log.warning("%d of %d inputs were longer than %d tokens and were truncated (longest first)",
                        truncated, len(encodings), limit)
        lengths = [len(e.ids) for e in encodings]
        if padding in (True, "longest"):
            width = max(lengths)
        elif padding == "max_length":
            width = max(max_length, max(lengths))
        elif padding in (False, None, "do_not_pad"):
            if len(set(lengths)) > 1:
                raise InputError(f"rows have different lengths {sorted(set(lengths))}: "
                                 f"use padding=True to pad them")
            width = lengths[0]
        else:
            raise InputError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")

        n = len(encodings)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        token_type_ids = torch.zeros((n, width), dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        special = torch.ones((n, width), dtype=torch.long)
        for i, e in enumerate(encodings):
            k = len(e.ids)
            input_ids[i, :k] = torch.tensor(e.ids, dtype=torch.long)
            token_type_ids[i, :k] = torch.tensor(e.type_ids, dtype=torch.long)
            attention_mask[i, :k] = 1
            special[i, :k] = torch.tensor(e.special_tokens_mask, dtype=torch.long)
        batch = Batch(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        batch.special_tokens_mask = special
        batch.encodings = encodings
        batch.truncated = truncated
        batch.offsets = [list(e.offsets) + [(0, 0)] * (width - len(e.ids)) for e in encodings] \
            if return_offsets else []
        batch.sequence_ids = [e.sequence_ids + [None] * (width - len(e.ids)) for e in encodings] \
            if return_offsets else []
        return batch


    # -- from token ids: the one place that packs [CLS] A [SEP] B [SEP] and pads ----------------
    def pack(self, ids_a: Sequence[int], ids_b: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """[CLS] A [SEP] (B [SEP]) from word-piece ids, and its token_type_ids (0 … 0 (1 … 1))."""
        input_ids = [self.cls_token_id, *ids_a, self.sep_token_id]
        token_type_ids = [0] * len(input_ids)
        if ids_b is not None:
            input_ids += [*ids_b, self.sep_token_id]
            token_type_ids += [1] * (len(ids_b) + 1)
        return input_ids, token_type_ids

    def pad(self, items: Sequence[Mapping[str, Sequence[int] | int | torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack un-padded rows into (B, T) LongTensors, T = the longest row.

        Per-token fields are right-padded: ``input_ids`` with [PAD], ``labels`` with IGNORE_INDEX,
        everything else (token_type_ids, attention_mask, …) with 0; ``attention_mask`` is made when
        absent. Scalars (a class label, a start position) are stacked into (B,).
        """
        return pad_rows(items, self.pad_token_id)


def pad_rows(items: Sequence[Mapping[str, Sequence[int] | int | torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """:meth:`Tokenizer.pad` for code that holds only the pad id."""
    if not items:
        raise InputError("cannot pad an empty batch")
    keys = list(items[0].keys())
    for n, item in enumerate(items):
        if list(item.keys()) != keys:
            raise InputError(f"batch item {n} has keys {list(item.keys())}, item 0 has {keys}")
    batch: dict[str, torch.Tensor] = {}
    lengths = [len(item["input_ids"]) for item in items]  # type: ignore[arg-type]
    longest = max(lengths)
    for key in keys:
        values = [torch.as_tensor(item[key], dtype=torch.long) for item in items]
        if values[0].dim() == 0:
            batch[key] = torch.stack(values)
            continue
        fill = pad_id if key == "input_ids" else IGNORE_INDEX if key == "labels" else 0
        width = max(longest, max(v.shape[0] for v in values))
        out = torch.full((len(values), width), fill, dtype=torch.long)
        for row, value in enumerate(values):
            out[row, : value.shape[0]] = value
        batch[key] = out
    if "attention_mask" not in batch:
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, n in enumerate(lengths):
            mask[row, :n] = 1
        batch["attention_mask"] = mask
    return batch


def _is_path(item: object) -> bool:
    """A Path, or a short one-line string naming an existing file (long texts are texts)."""
    if isinstance(item, Path):
        return True
    if not isinstance(item, str) or "\n" in item or len(item) > 1024:
        return False
    try:
        return Path(item).is_file()
    except OSError:
        return False


def check_text(text: object, index: int, what: str = "text") -> str:
    """``text`` itself when it is a string of UTF-8-encodable characters.

    A str made from bytes that are not UTF-8 (Python turns a command-line argument's b'\\xff' into
    the lone surrogate '\\udcff') is InputError naming ``what`` ``index`` and the byte.
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} {index} is a {type(text).__name__}, not a string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        char = text[err.start]
        shown = f"byte 0x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else f"{char!r}"
        raise InputError(f"{what} {index} holds bytes that are not UTF-8 ({shown} at character {err.start}); "
                         f"pass UTF-8 text") from None
    return text


def check_count(name: str, value: object, minimum: int, why: str = "") -> int:
    """``value`` itself when it is an int (not a bool) >= ``minimum``; else InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        because = f" ({why})" if why else ""
        raise InputError(f"{name} must be an integer >= {minimum}{because}, got {value!r}")
    return value


__all__ = ["Tokenizer", "Batch", "SPECIAL_TOKENS", "IGNORE_INDEX", "pad_rows", "check_text", "check_count"]
