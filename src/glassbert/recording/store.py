"""A run's record on disk, read and sized in one place: the manifest, the tensors, the metrics.

    RUN/record/manifest.json              what was recorded (config, samples, snapshots, tensor index,
                                          the model's capture catalogue)
    RUN/record/snap-000000.safetensors    snapshot 0: activations (leading sample axis) + weights
    RUN/record/weights-decay.json         the embedding tables' weight decay, step by step (when any)
    RUN/metrics.jsonl                     loss/accuracy rows written by the trainer (optional)

Weights: a recording whose manifest has ``"weights"`` holds every parameter of its first snapshot in float32 and,
in each later snapshot, what changed (:mod:`glassbert.recording.weights`); :meth:`RecordStore.tensor` and
:meth:`RecordStore.snapshot_tensors` rebuild them, so readers see each snapshot's weights under their names.
Older recordings hold each snapshot's weights whole, as stored.

The explorer's server and its single-file export both read through :class:`RecordStore`; the recorder
and the export both choose what to leave out under a size bound with :func:`choose_dropped`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glassbert.capture import CORE, KEEP
from glassbert.errors import InputError, MissingError, PathRefused
from glassbert.recording.weights import DECAY_FILE, DecayLog, rebuild
from glassbert.runfiles import METRICS_FILE, read_jsonl
from glassbert.textfiles import read_json

RECORD_DIR = "record"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: the manifest carries the model's capture catalogue
READABLE_VERSIONS = (1, 2)
_NO_RECORDING = ("record one with `glassbert demo`, `glassbert pretrain --record ...` or "
                 "`glassbert explore MODEL --text ...`")


_RERECORD = "re-record the run (`glassbert demo --out DIR`, `glassbert explore MODEL --text ...`)"
_MANIFEST_KEYS = {"snapshots": list, "tensors": dict, "samples": list}


def _read_manifest_json(path: Path) -> Any:
    """The JSON in ``path``; InputError naming the file, and the line and column, when it is not UTF-8 JSON."""
    try:
        return read_json(path)
    except InputError as e:
        raise InputError(f"{e}; the manifest is damaged: {_RERECORD}") from None


def quoted(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (with its full length) when longer."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` if it stays inside ``root`` (symlinks resolved), else :class:`PathRefused`."""
    if "\x00" in rel or "\\" in rel:
        raise PathRefused(rel)
    parts = rel.split("/")
    if rel.startswith("/") or any(p == ".." for p in parts) or (parts and ":" in parts[0]):
        raise PathRefused(rel)
    root = root.resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise PathRefused(rel)
    return target


# ─── where the record is ─────────────────────────────────────────────────────────────────────
def record_dir(run_dir: str | Path) -> Path:
    """The directory that holds manifest.json for a run directory (or a record directory itself)."""
    p = Path(run_dir)
    if (p / RECORD_DIR / MANIFEST).is_file():
        return p / RECORD_DIR
    if (p / MANIFEST).is_file():
        return p
    raise MissingError(f"no recording in {p} (expected {p / RECORD_DIR / MANIFEST}); {_NO_RECORDING}")


def has_recording(path: str | Path) -> bool:
    """Does ``path`` hold a recording (a run directory with record/, or a record directory)?"""
    p = Path(path)
    return (p / RECORD_DIR / MANIFEST).is_file() or (p / MANIFEST).is_file()


def run_root(run_dir: str | Path) -> Path:
    """The run directory: the parent of record/ (or the record directory itself when it stands alone)."""
    d = record_dir(run_dir).resolve()
    return d.parent if d.name == RECORD_DIR and (d.parent / RECORD_DIR / MANIFEST).is_file() else d


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run directory (``RUN/record/manifest.json``), a record directory or the file itself.

    A manifest written by an older glassbert (version 1, no catalogue) gets its catalogue rebuilt from
    the model class and config it names, in memory; the file is not touched.
    """
    p = Path(run_dir)
    for candidate in (p / RECORD_DIR / MANIFEST, p / MANIFEST, p):
        if candidate.is_file():
            manifest = _read_manifest_json(candidate)
            version = manifest.get("version") if isinstance(manifest, dict) else None
            if version not in READABLE_VERSIONS:
                raise InputError(f"{candidate}: manifest version {version!r}; this glassbert reads versions "
                                 f"{', '.join(map(str, READABLE_VERSIONS))}. Re-record the run with this version "
                                 "(`glassbert demo --out DIR`, `glassbert explore MODEL --text ...`)")
            for key, kind in _MANIFEST_KEYS.items():
                if not isinstance(manifest.get(key), kind):
                    found = "missing" if key not in manifest else f"a {type(manifest[key]).__name__}"
                    raise InputError(f"{candidate}: key {key!r} is {found}, not a JSON "
                                     f"{'object' if kind is dict else 'list'}; the manifest is damaged: {_RERECORD}")
            if "catalogue" not in manifest:
                manifest["catalogue"] = _rebuild_catalogue(manifest, candidate)
            return manifest
    raise MissingError(f"no recording in {p} (expected {p / RECORD_DIR / MANIFEST}); {_NO_RECORDING}")


def _rebuild_catalogue(manifest: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    """The catalogue of a version-1 record: the named model class built on the meta device (no memory)."""
    from glassbert.capture import catalogue
    from glassbert.config import BertConfig
    from glassbert.registry import TASK_MODELS

    try:
        cls = TASK_MODELS[manifest["model"]]
        config = BertConfig.from_dict(dict(manifest["config"]), source=str(path))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: recorded by an older glassbert and its model cannot be rebuilt ({e}); "
                         f"re-record it: {_NO_RECORDING}") from None
    with torch.device("meta"):
        model = cls(config)
    return catalogue(model)


# ─── what fits ───────────────────────────────────────────────────────────────────────────────
def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


_SAFETENSORS_DTYPES = {torch.float16: "F16", torch.float32: "F32", torch.int32: "I32", torch.int64: "I64",
                       torch.bfloat16: "BF16", torch.float64: "F64", torch.bool: "BOOL", torch.uint8: "U8",
                       torch.int8: "I8", torch.int16: "I16"}


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> int:
    """Exact size of the file safetensors will write (header JSON padded to 8 bytes + data)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in sorted(tensors, key=lambda k: (-tensors[k].element_size(), k)):
        t = tensors[name]
        n = tensor_bytes(t)
        header[name] = {"dtype": _SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    hlen = len(json.dumps(header, separators=(",", ":")).encode())
    hlen += (-hlen) % 8
    return 8 + hlen + offset


def choose_dropped(sizes: Mapping[str, int], meta: Mapping[str, Mapping[str, Any]], budget: float, *,
                   keep_from: int, weights_first: bool = False, protected: frozenset[str] = frozenset()) -> list[str]:
    """Whole tensors to leave out until the rest fits ``budget`` bytes.

    Lowest priority first and, within a priority, the largest first (``weights_first``: every weight
    before any activation). Tensors of priority ``keep_from`` or more, and ``protected`` ones, stay.
    """
    def rank(name: str) -> tuple:
        m = meta[name]
        return (0 if weights_first and m["kind"] == "weight" else 1, m["priority"], -sizes[name], name)

    total = sum(sizes.values())
    dropped = []
    for name in sorted((n for n in sizes if meta[n]["priority"] < keep_from), key=rank):
        if total <= budget:
            break
        if name in protected:
            continue
        dropped.append(name)
        total -= sizes[name]
    return dropped


# ─── reading ─────────────────────────────────────────────────────────────────────────────────
def read_metrics(run_dir: str | Path, manifest: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of the run's metrics file (JSON lines; unreadable lines are skipped)."""
    rel = (manifest or {}).get("metrics") or METRICS_FILE
    try:
        path = safe_join(Path(run_dir).resolve(), rel)
    except PathRefused:
        return []
    # a torn last line (a kill mid-append) is skipped, on purpose; a byte that is not UTF-8 is an InputError
    return [row for row in read_jsonl(path) if isinstance(row, dict)] if path.is_file() else []


def read_safetensors_raw(path: Path) -> dict[str, dict[str, Any]]:
    """The tensors of a safetensors file as {name: {dtype, shape, raw bytes}}: for copying, not computing."""
    data = path.read_bytes()
    damaged = f"{path}: not a complete safetensors file"
    n = int.from_bytes(data[:8], "little")
    if len(data) < 8 or 8 + n > len(data):
        raise InputError(f"{damaged} ({len(data)} bytes, shorter than its header says); {_RERECORD}")
    try:
        header = json.loads(data[8:8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{damaged} (its header is not JSON: {e}); {_RERECORD}") from None
    if not isinstance(header, dict):
        raise InputError(f"{damaged} (its header is not a JSON object); {_RERECORD}")
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            a, b = (int(x) for x in info["data_offsets"])
            dtype, shape = str(info["dtype"]), [int(d) for d in info["shape"]]
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{damaged} (header entry {quoted(name)} has no dtype, shape and data_offsets); "
                             f"{_RERECORD}") from None
        if not 0 <= a <= b <= len(data) - base:
            raise InputError(f"{damaged} ({quoted(name)} lies past its end: cut short?); {_RERECORD}")
        out[name] = {"dtype": dtype, "shape": shape, "raw": data[base + a:base + b]}
    return out


class RecordStore:
    """Read access to one recording: manifest, metrics, one tensor (lazily), a whole snapshot (raw)."""

    def __init__(self, run_dir: str | Path):
        self.record_dir = record_dir(run_dir).resolve()
        self.run_dir = run_root(run_dir)
        self._decay: tuple[float, DecayLog] | None = None  # (the file's mtime, the log)

    def manifest(self) -> dict[str, Any]:
        manifest = load_manifest(self.record_dir)
        manifest["run_name"] = self.run_dir.name  # the directory's name now: a run may be renamed or moved
        return manifest

    def metrics(self, manifest: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return read_metrics(self.run_dir, manifest if manifest is not None else self.manifest())

    def snapshot_path(self, entry: Mapping[str, Any]) -> Path:
        path = safe_join(self.record_dir, entry["file"])
        if not path.is_file():
            raise MissingError(f"snapshot file {entry['file']} is missing from {self.record_dir}")
        return path

    def snapshot_raw(self, entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return read_safetensors_raw(self.snapshot_path(entry))

    def snapshot_tensors(self, snap: int, manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Every tensor of snapshot ``snap`` as :meth:`snapshot_raw` gives them, its weights rebuilt (float32) in a
        recording that keeps them as a base and changes; a snapshot that holds no weights has none."""
        entry = manifest["snapshots"][snap]
        raw = self.snapshot_raw(entry)
        if not manifest.get("weights"):
            return raw
        tensors = manifest["tensors"]
        out = {k: v for k, v in raw.items() if "@" not in k and tensors.get(k, {}).get("kind") != "weight"}
        if entry.get("weights", "none") != "none":
            for name, meta in tensors.items():
                if meta.get("kind") == "weight":
                    t = self.weight(snap, name, manifest=manifest).contiguous()
                    out[name] = {"dtype": "F32", "shape": list(t.shape), "raw": t.numpy().tobytes()}
        return out

    def _decay_log(self) -> DecayLog | None:
        path = self.record_dir / DECAY_FILE
        if not path.is_file():
            return None
        mtime = path.stat().st_mtime
        if self._decay is None or self._decay[0] != mtime:
            try:
                log = DecayLog.read(path)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise InputError(f"{path}: not a decay log ({e}); {_RERECORD}") from None
            assert log is not None
            self._decay = (mtime, log)
        return self._decay[1]

    def weight(self, snap: int, name: str, rows: tuple[int, int] | None = None,
               manifest: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Parameter ``name`` as it was at snapshot ``snap`` (float32; rows ``a:b`` of its first axis), rebuilt from
        the base and the snapshot's changes (:mod:`glassbert.recording.weights`). LookupError when the recording
        cannot rebuild it (an older layout: read it with :meth:`tensor`; a snapshot the size bound left without
        weights)."""
        from safetensors import SafetensorError, safe_open

        manifest = manifest if manifest is not None else self.manifest()
        layout = manifest.get("weights")
        snaps = manifest["snapshots"]
        if not layout:
            raise LookupError("this recording stores each snapshot's weights whole: read them with tensor()")
        if not 0 <= snap < len(snaps):
            raise LookupError(f"snapshot {snap} does not exist (this run has {len(snaps)}: 0..{len(snaps) - 1})")
        entry = snaps[snap]
        if entry.get("weights", "none") == "none":
            raise LookupError(f"snapshot {snap} (epoch {entry['epoch']} · step {entry['step']}) holds no weights: "
                              "the recorder's size bound left no room for them")
        try:
            base_path = safe_join(self.record_dir, layout["base"])
            path = self.snapshot_path(entry)
        except (MissingError, PathRefused) as e:
            raise LookupError(str(e)) from None
        if not base_path.is_file():
            raise LookupError(f"the base of the weights, {layout['base']}, is missing from {self.record_dir}")
        is_base = path == base_path
        log = None if is_base else self._decay_log()
        step, base_step = int(entry["step"]), int(layout["base_step"])
        try:
            with safe_open(str(base_path), framework="pt") as fb, safe_open(str(path), framework="pt") as fs:
                if name not in fb.keys():
                    raise LookupError(f"tensor {quoted(name)} is not a weight of this recording")

                def reader(f: Any) -> Any:
                    def read(key: str, r: tuple[int, int] | None) -> torch.Tensor:
                        return f.get_slice(key)[r[0]:r[1]] if r is not None else f.get_tensor(key)
                    return read
                keys = None if is_base else set(fs.keys())
                replayed = keys is not None and not ({name, f"{name}@f16", f"{name}@i8"} & keys)
                factors = log.factors(name, base_step, step) if log is not None else []
                if replayed and name in layout.get("tables", ()) and entry.get("decay") is not None:
                    now = (log or DecayLog(list(layout["tables"]))).fingerprint(base_step, step)
                    if now != entry["decay"]:
                        raise LookupError(f"snapshot {snap}: {DECAY_FILE} no longer holds the weight decay of the "
                                          f"steps it was recorded after (missing, or rewritten by a resumed run), so "
                                          f"{quoted(name)} cannot be rebuilt exactly")
                if rows is not None:
                    shape = list(fb.get_slice(name).get_shape())
                    sl = self._row_slice(name, rows, shape)
                    rows = (sl.start, sl.stop)
                return rebuild(reader(fb), reader(fs), keys, name, factors, rows)
        except SafetensorError as e:
            raise InputError(f"{path}: not a readable safetensors file ({e}); {_RERECORD}") from None

    def tensor(self, snap: int, name: str, sample: int | None = None, rows: tuple[int, int] | None = None,
               manifest: Mapping[str, Any] | None = None, all_samples: bool = False) -> tuple[np.ndarray, str]:
        """One recorded tensor (aliases resolved) as numpy: sample ``sample``'s (default 0) slice of an
        activation, or every sample's with ``all_samples``; optionally rows ``rows`` of its first axis.
        LookupError says what does not exist."""
        from safetensors import SafetensorError, safe_open

        manifest = manifest if manifest is not None else self.manifest()
        snaps = manifest["snapshots"]
        if not 0 <= snap < len(snaps):
            raise LookupError(f"snapshot {snap} does not exist (this run has {len(snaps)}: 0..{len(snaps) - 1})")
        meta = manifest["tensors"].get(name)
        if meta is None:
            hint = " (dropped to respect the size bound)" if name in manifest.get("dropped", []) else ""
            raise LookupError(f"tensor {quoted(name)} was not recorded{hint}")
        entry = snaps[snap]
        if meta.get("kind") == "weight" and manifest.get("weights"):
            return self.weight(snap, name, rows, manifest).numpy(), "F32"
        key = entry.get("aliases", {}).get(name, name)
        try:
            path = self.snapshot_path(entry)
        except MissingError as e:
            raise LookupError(str(e)) from None
        try:
            with safe_open(str(path), framework="np") as f:
                if key not in f.keys():
                    raise LookupError(f"tensor {quoted(name)} is not in snapshot {snap}")
                sl = f.get_slice(key)
                shape = list(sl.get_shape())
                dtype = str(sl.get_dtype())
                index: list[slice] = []
                lead = meta["kind"] == "activation" and len(shape) == len(meta["shape"]) + 1 and not all_samples
                if lead:
                    s = 0 if sample is None else sample
                    if not 0 <= s < shape[0]:
                        raise LookupError(f"sample {s} does not exist (recorded samples: 0..{shape[0] - 1})")
                    index.append(slice(s, s + 1))
                if rows is not None:
                    index.append(self._row_slice(name, rows, shape[len(index):]))
                arr = np.asarray(sl[tuple(index)] if index else sl[:])
        except SafetensorError as e:
            raise InputError(f"{path}: not a readable safetensors file ({e}); {_RERECORD}") from None
        return (arr[0] if lead else arr), dtype

    @staticmethod
    def _row_slice(name: str, rows: tuple[int, int], shape: list[int]) -> slice:
        """Rows ``start:stop`` of the first axis of ``shape``; a stop past the end means "to the end", a start
        past it is a LookupError that says how many rows there are."""
        start, stop = rows
        if start < 0 or stop <= start:
            raise ValueError(f"rows {start}:{stop} is not a range A:B with 0 <= A < B")
        if not shape:
            raise LookupError(f"tensor {quoted(name)} is a single number: it has no rows")
        if start >= shape[0]:
            have = f"rows 0..{shape[0] - 1}" if shape[0] else "no rows"
            raise LookupError(f"rows {start}:{stop} do not exist: tensor {quoted(name)} has {have}")
        return slice(start, min(stop, shape[0]))


def load_tensor(run_dir: str | Path, snapshot: int, name: str, sample: int | None = None) -> torch.Tensor:
    """One recorded tensor as a float32 (or integer) torch tensor; ``sample`` = row among the recorded samples."""
    try:
        arr, _ = RecordStore(run_dir).tensor(snapshot, name, sample, all_samples=sample is None)
    except LookupError as e:
        raise KeyError(str(e.args[0] if e.args else e)) from None
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.float() if t.is_floating_point() else t


# ─── the size bound's plan (the recorder makes it; the note says it to the user) ─────────────
MANIFEST_RESERVE = 256_000  # room kept for the manifest inside the bound


@dataclass
class SizePlan:
    dropped: list[str] = field(default_factory=list)
    per_snapshot: int = 0
    expected: int = 0
    whole: int = 0  # one snapshot's bytes with nothing left out


def dropped_weights_note(plan: SizePlan, meta: Mapping[str, Any], catalogue_: Sequence[Mapping[str, Any]],
                         max_bytes: int) -> str | None:
    """The one line a run prints when the size bound left weights out of the recording: which (by the names the
    explorer draws them under: W tok, W pos, W_1, W_2, …) and how to keep them; None when every weight stays."""
    weights = [n for n in plan.dropped if meta[n]["kind"] == "weight"]
    if not weights:
        return None
    blocks = {}
    for entry in catalogue_:
        if entry.get("weight") and entry.get("weight_block"):
            blocks.setdefault(entry["weight"], entry["weight_block"])
    counts: dict[str, int] = {}
    for name in weights:
        block = blocks.get(name, "biases and norms" if meta[name]["priority"] > CORE_WEIGHT_PRIORITY else meta[name]["label"])
        counts[block] = counts.get(block, 0) + 1
    named = [f"{b} ×{n}" if n > 1 and b != "biases and norms" else b for b, n in counts.items()]
    names = ", ".join(named[:8]) + (", …" if len(named) > 8 else "")
    fit = int((max_bytes - MANIFEST_RESERVE) // max(1, plan.whole))
    how = (f"to keep them, record at most {fit} snapshot{'s' * (fit != 1)} (e.g. --record 'epochs=0,last') or fewer "
           "samples" if fit >= 1 else f"one snapshot with them is {plan.whole / 1e6:.0f} MB, more than the bound: "
           "record fewer samples to keep them")
    return (f"--record: to fit {plan.expected} snapshot{'s' * (plan.expected != 1)} in its {max_bytes / 1e6:.0f} MB "
            f"bound, the recording leaves out {len(weights)} weight tensors ({names}); {how}")


CORE_WEIGHT_PRIORITY = 1  # describe_weight's matrices and tables; above it: biases and LayerNorm weights


__all__ = ["RECORD_DIR", "MANIFEST", "MANIFEST_VERSION", "RecordStore", "load_manifest", "record_dir", "run_root", "has_recording",
           "read_metrics", "load_tensor", "choose_dropped", "safetensors_bytes", "tensor_bytes", "safe_join",
           "PathRefused", "KEEP", "CORE", "MANIFEST_RESERVE", "SizePlan", "dropped_weights_note"]
