"""Export a recording as ONE self-contained HTML file: the page, its CSS and JS, the manifest, the
metrics and the tensors inlined. It opens offline from disk, with no server.

Tensors are stored for display, not for computing: float tensors as float16 (3–4 significant digits, what
the page shows), each one's bytes split into high and low halves, XOR-ed with the same tensor of the previous
snapshot (training changes few bits between two snapshots) and deflated, then base64 (``{"z": 1, "split": 1,
"delta": 0|1}`` says which; the page undoes them with the browser's DecompressionStream). Integer tensors
are deflated as they are. Weights recorded as float32 stay float32 (the page runs the model on them: its
what-if computes every tensor in the browser, static/forward.js); ``exact=True`` keeps every float32 value as
recorded (a larger file). A recording that keeps its weights as a base and changes (recording.weights) is
exported with each snapshot's weights rebuilt, float32, under their names (a snapshot the recorder's bound left
without weights has none in the file either).

Size bound: when the tensors would make the file larger than ``max_bytes``, whole tensors are left
out (the same priority order as the recorder: weights first, largest first, then redundant
activations ...); the page marks them as not exported and ``manifest["export_dropped"]`` lists them.
When the float32 weights alone are over the bound, the export tries them rounded to float16 (half the bytes;
XOR-ed with the previous snapshot's as the activations are): ``manifest["export_weights"]`` says which the file holds, and the
page says so in every what-if answer. When the weights still do not fit, ``manifest["export_whatif"]`` says why
the page cannot run the model and which bound would let it (``glassbert explore … --export FILE --max-mb N``).

The page's what-if also needs the whole vocabulary (the tokenizer): a recording that keeps only the words it saw
(models of more than 5000 tokens, such as MiniLM) gets it from the run's tokenizer or ``model``'s, as
``manifest["export_vocab"]`` (its ``vocab`` stays the recorded words, which the views list).

A tensor whose text is over ``OUT_OF_LINE`` characters (MiniLM's weights) is written in a ``<script
type="application/octet-stream">`` block of its own, its entry naming the block (``"el"``), so that opening
the page parses only the small JSON; the page reads a block when the what-if first needs it.
"""
from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from glassbert.capture import KEEP
from glassbert.errors import GlassbertError, InputError
from glassbert.explorer.server import STATIC_DIR
from glassbert.recording.store import RecordStore, choose_dropped
from glassbert.runfiles import atomic_write_text, check_target_file
from glassbert.tokenizer import Tokenizer

DEFAULT_EXPORT_BYTES = 25_000_000  # a shareable file: a fine-tuned MiniLM with 3 samples fits, saying what it left out
PAGE_RESERVE = 2_000_000  # room for the page itself, the manifest (a vocabulary of 30 522 tokens is 0.3 MB) and metrics
OUT_OF_LINE = 1_000_000  # characters of base64: a larger tensor gets a block of its own, read only when needed
SIZE_OPTION = "--max-mb"  # what `glassbert explore` calls the bound (cli/viewing.py), named in the page's note
_DTYPES = {"F16": "f16", "F32": "f32", "I32": "i32", "I64": "i64", "BF16": "bf16"}


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside <script> and holds no '//' (so no URL-looking text survives)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("/", "\\/").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _encode(t: dict[str, Any], previous: dict[str, Any] | None, exact: bool,
            level: int = 9) -> tuple[dict[str, Any], np.ndarray | None]:
    """One tensor as it goes into the file, and the float16 bits the next snapshot's delta is taken against."""
    if t["dtype"] in ("F32", "F16", "BF16") and not (exact and t["dtype"] == "F32"):
        if t["dtype"] == "BF16":
            bits32 = np.frombuffer(t["raw"], dtype="<u2").astype("<u4") << 16
            values = bits32.view("<f4").astype("<f2")
        else:
            with np.errstate(over="ignore"):  # the additive mask's most negative float32 becomes −inf, as shown
                values = np.frombuffer(t["raw"], dtype="<f4" if t["dtype"] == "F32" else "<f2").astype("<f2")
        bits = values.view("<u2")
        delta = previous is not None and previous["shape"] == t["shape"] and previous["bits"] is not None
        coded = bits ^ previous["bits"] if delta else bits
        split = coded.view(np.uint8).reshape(-1, 2).T.tobytes()  # all low bytes, then all high bytes
        entry = {"dtype": "f16", "shape": t["shape"], "z": 1, "split": 1, "delta": int(delta),
                 "b64": base64.b64encode(zlib.compress(split, level)).decode("ascii")}
        return entry, bits
    entry = {"dtype": _DTYPES[t["dtype"]], "shape": t["shape"], "z": 1,
             "b64": base64.b64encode(zlib.compress(t["raw"], level)).decode("ascii")}
    return entry, None


def _derivable(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The activations the page can rebuild from others that stay in the file (never an alias's target): the
    capture points whose catalogue entry says ``rebuild`` (glassbert.capture.Point), when their sources are there."""
    targets = {t for entry in manifest["snapshots"] for t in entry.get("aliases", {}).values()}
    head_size = (manifest.get("config") or {}).get("attention_head_size")
    out: dict[str, dict[str, Any]] = {}
    for point in manifest.get("catalogue") or []:
        name, rebuild = point["name"], point.get("rebuild")
        if not rebuild or name not in manifest["tensors"] or name in targets:
            continue
        op, *sources = rebuild
        base = f"{point['module']}." if point["module"] else ""
        needed = [base + source for source in sources if source]
        if not all(n in manifest["tensors"] for n in needed) or (op == "scale" and not head_size):
            continue
        out[name] = {"op": op, "from": needed}
        if op == "scale":
            out[name]["factor"] = float(head_size) ** 0.5
    return out


def _encode_all(store: RecordStore, manifest: dict[str, Any], exact: bool,
                weights16: bool) -> tuple[list[dict[str, dict[str, Any]]], dict[str, int]]:
    """Every snapshot's tensors as they go into the file, and each name's characters over all snapshots. Weights
    recorded as float32 stay float32 (the page runs the model on them: static/forward.js) unless ``weights16``:
    then they are rounded to float16 as the activations are (deflated at level 6: 9 takes twice as long on
    MiniLM's 91 MB for 0.4 % less)."""
    payload: list[dict[str, dict[str, Any]]] = []
    previous: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for index, entry in enumerate(manifest["snapshots"]):
        encoded = {}
        for name, t in store.snapshot_tensors(index, manifest).items():
            if t["dtype"] not in _DTYPES:
                raise InputError(f"{entry['file']}: {name} has dtype {t['dtype']}, which cannot be exported")
            weight = manifest["tensors"].get(name, {}).get("kind") == "weight"
            keep = exact or (weight and not weights16)
            encoded[name], bits = _encode(t, previous.get(name), keep, level=6 if weight else 9)
            previous[name] = {"shape": t["shape"], "bits": bits}
            sizes[name] = sizes.get(name, 0) + len(encoded[name]["b64"])
        for name in set(previous) - set(encoded):  # not stored in this snapshot: the next one starts afresh
            previous.pop(name)
        payload.append(encoded)
    return payload, sizes


def _full_vocab(manifest: dict[str, Any], run_dir: Path, model: str | Path | None) -> list[str] | None:
    """The token of every id, for the page's tokenizer: the recording's when it kept them all, else the
    tokenizer of ``model`` (default: the run's own directory); None when neither has it. A tokenizer that
    disagrees with a word the recording kept is not the run's: refused."""
    vocab, size = manifest.get("vocab"), int((manifest.get("config") or {}).get("vocab_size") or 0)
    if isinstance(vocab, list) and len(vocab) == size:
        return vocab
    try:
        tok = Tokenizer.from_pretrained(model or run_dir)
    except (OSError, ValueError, GlassbertError):
        return None
    tokens = list(tok.convert_ids_to_tokens(list(range(min(size, len(tok))))))
    if len(tokens) != size:
        return None
    kept = vocab.items() if isinstance(vocab, dict) else enumerate(vocab or [])
    wrong = [(i, t) for i, t in kept if int(i) >= size or tokens[int(i)] != t]
    if wrong:
        i, t = wrong[0]
        raise InputError(f"the tokenizer of {model or run_dir} is not the recording's: id {i} is {t!r} in the "
                         f"recording, {tokens[int(i)] if int(i) < size else 'missing'!r} in the tokenizer")
    return tokens


def _mb(chars: int) -> int:
    """The smallest bound, in MB, under which ``chars`` of tensors fit beside the page."""
    return -(-(chars + PAGE_RESERVE) // 1_000_000)


def export_html(run_dir: str | Path, out_file: str | Path, max_bytes: int | float = DEFAULT_EXPORT_BYTES, *,
                overwrite: bool = False, exact: bool = False, model: str | Path | None = None,
                say: Callable[[str], None] | None = None) -> Path:
    """Write the explorer page for ``run_dir`` with all its data into the single file ``out_file``.

    An existing ``out_file`` is refused (ExistsError) unless ``overwrite``; the file is written atomically,
    so a failed or interrupted export leaves the old file (or none), never half a page. Float tensors are
    stored as float16 unless ``exact`` (see the module docstring); weights as float32 where the bound allows.
    ``model``: where the vocabulary comes from when the recording did not keep it whole (default: the run).
    ``say``: told in one line whether the page runs the what-if itself (and, when not, which bound would let it).
    """
    out = check_target_file(out_file, overwrite=overwrite, option="--export")
    store = RecordStore(run_dir)
    manifest = store.manifest()
    metrics = store.metrics(manifest)
    derived = _derivable(manifest)  # layout changes and sums of other tensors are rebuilt by the page, not stored twice
    sources = frozenset(n for d in derived.values() for n in d["from"])
    budget = int(max_bytes) - PAGE_RESERVE

    def fit(weights16: bool) -> tuple[list[dict[str, dict[str, Any]]], dict[str, int], list[str], set[str]]:
        """The tensors, their sizes, those the bound leaves out (lowest priority and largest first) and the
        weights among them."""
        payload, sizes = _encode_all(store, manifest, exact, weights16)
        for tensors in payload:
            for name in derived:
                tensors.pop(name, None)
        for name in derived:
            sizes.pop(name, None)
        meta = {name: manifest["tensors"].get(name, {"kind": "activation", "priority": 3}) for name in sizes}
        left_out = choose_dropped(sizes, meta, budget, keep_from=KEEP, weights_first=True, protected=sources)
        return payload, sizes, left_out, {n for n in left_out if meta[n]["kind"] == "weight"}

    payload_tensors, sizes, left_out, weights_out = fit(False)
    weights = "float32"
    need = {"float32": _mb(sum(sizes.values()))}
    kinds = {n: manifest["tensors"].get(n, {}).get("kind") for n in sizes}
    weight_chars = sum(size for n, size in sizes.items() if kinds[n] == "weight")
    # float32 weights alone over the bound (MiniLM's 111 MB in a 60 MB file): rounded to float16 they may fit. (A
    # bound that holds them but not the activations too leaves weights out, lowest priority first, as before.)
    if weights_out and not exact and weight_chars > budget:
        payload16, sizes16, left_out16, weights_out16 = fit(True)
        need["float16"] = _mb(sum(sizes16.values()))
        if not weights_out16:
            payload_tensors, sizes, left_out, weights_out, weights = payload16, sizes16, left_out16, set(), "float16"
    manifest["export_derived"] = derived
    total = sum(sizes.values()) - sum(sizes[n] for n in left_out)
    if total > budget:
        raise InputError(f"the page needs {_mb(total)} MB even without {len(left_out)} of "
                         f"its tensors, over the {int(max_bytes) / 1e6:g} MB bound: raise it (--max-mb, or max_bytes=)")
    gone = set(left_out)
    # aliases of a left-out tensor go with it
    for entry in manifest["snapshots"]:
        gone.update(a for a, target in entry.get("aliases", {}).items() if target in gone)
    manifest["export_dropped"] = sorted(gone)
    manifest["export_dtype"] = "float32" if exact else "float16"
    manifest["export_weights"] = weights
    manifest["export_whatif"] = None
    has_weights = any(manifest["tensors"].get(n, {}).get("kind") == "weight" for snap in payload_tensors for n in snap)
    if weights_out:
        options = " or ".join(f"{SIZE_OPTION} {mb} ({'exact' if how == 'float32' else 'weights rounded to float16'})"
                              for how, mb in need.items())
        manifest["export_whatif"] = (
            f"its {int(max_bytes) / 1e6:g} MB size bound left out the model's weights: export with {options} "
            "for a file that runs the model itself")
    elif has_weights:
        vocab = _full_vocab(manifest, Path(run_dir), model)
        if vocab is None:
            manifest["export_whatif"] = (f"the file does not hold the whole vocabulary and {model or run_dir} has no "
                                         "tokenizer to take it from: export with --model MODEL (the run's model)")
        elif vocab is not manifest.get("vocab"):  # beside the recorded words, which the views list (the projector)
            manifest["export_vocab"] = vocab
    if say and (has_weights or weights_out):
        say(f"its what-if needs the server: {manifest['export_whatif']}" if manifest["export_whatif"] else
            f"the page runs the model itself (weights as {weights}"
            + (", rounded: a larger --max-mb keeps them exact)" if weights == "float16" else ")"))
    for name in gone:
        manifest["tensors"].pop(name, None)
    payload_tensors = [{n: e for n, e in tensors.items() if n not in gone} for tensors in payload_tensors]
    blocks = []  # the large tensors' text, out of the JSON (read by the page when needed: pagemodel.js)
    for tensors in payload_tensors:
        for entry in tensors.values():
            if len(entry["b64"]) > OUT_OF_LINE:
                entry["el"] = f"glassbert-t{len(blocks)}"
                blocks.append(f'<script type="application/octet-stream" id="{entry["el"]}">{entry.pop("b64")}</script>')
    payload = {"manifest": manifest, "metrics": metrics, "tensors": payload_tensors}

    data = "\n".join([f'<script type="application/json" id="glassbert-data">{_json_for_script(payload)}</script>'] + blocks)
    html = _inline_page((STATIC_DIR / "index.html").read_text(encoding="utf-8"), data)
    if "://" in html:
        raise InputError("export would contain a URL; refusing to write a page that is not self-contained")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    return out


_SCRIPT = re.compile(r'<script src="(static/[^"<>]+\.js)"></script>')


def _inline_page(html: str, data: str) -> str:
    """index.html with its stylesheet and every script it references (core, views, app: in their order) inlined,
    and the ``data`` block just before the first script. A missing asset, or one that would end its own tag
    early, is refused."""
    link = re.compile(r'<link rel="stylesheet" href="static/style.css">')
    scripts = _SCRIPT.findall(html)
    if not link.search(html) or not scripts or len(scripts) != len(re.findall(r"<script\b", html, re.I)):
        raise InputError("index.html does not reference static/style.css and its static/*.js scripts as expected")
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    if re.search(r"</style", css, re.I):
        raise InputError("static assets cannot be inlined (static/style.css contains a closing tag)")
    code = {}
    for rel in scripts:
        path = (STATIC_DIR / rel[len("static/"):]).resolve()
        if STATIC_DIR.resolve() not in path.parents or not path.is_file():
            raise InputError(f"index.html references {rel}, which is not a file of the explorer's static folder")
        code[rel] = path.read_text(encoding="utf-8")
        if re.search(r"</script|<!--", code[rel], re.I):
            raise InputError(f"static assets cannot be inlined ({rel} contains a closing tag or '<!--')")
    html = link.sub(lambda _: f"<style>\n{css}\n</style>", html, count=1)
    before = [f"{data}\n"]  # the data goes just before the first script
    return _SCRIPT.sub(lambda m: (before.pop() if before else "") + f"<script>\n{code[m.group(1)]}\n</script>", html)
