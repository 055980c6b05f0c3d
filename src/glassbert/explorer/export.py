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
"""
from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from glassbert.capture import KEEP
from glassbert.errors import InputError
from glassbert.explorer.server import STATIC_DIR
from glassbert.recording.store import RecordStore, choose_dropped
from glassbert.runfiles import atomic_write_text, check_target_file

DEFAULT_EXPORT_BYTES = 25_000_000  # a shareable file: a fine-tuned MiniLM with 3 samples fits, saying what it left out
_DTYPES = {"F16": "f16", "F32": "f32", "I32": "i32", "I64": "i64", "BF16": "bf16"}


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside <script> and holds no '//' (so no URL-looking text survives)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("/", "\\/").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _encode(t: dict[str, Any], previous: dict[str, Any] | None, exact: bool) -> tuple[dict[str, Any], np.ndarray | None]:
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
                 "b64": base64.b64encode(zlib.compress(split, 9)).decode("ascii")}
        return entry, bits
    entry = {"dtype": _DTYPES[t["dtype"]], "shape": t["shape"], "z": 1,
             "b64": base64.b64encode(zlib.compress(t["raw"], 9)).decode("ascii")}
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


def export_html(run_dir: str | Path, out_file: str | Path, max_bytes: int | float = DEFAULT_EXPORT_BYTES, *,
                overwrite: bool = False, exact: bool = False) -> Path:
    """Write the explorer page for ``run_dir`` with all its data into the single file ``out_file``.

    An existing ``out_file`` is refused (ExistsError) unless ``overwrite``; the file is written atomically,
    so a failed or interrupted export leaves the old file (or none), never half a page. Float tensors are
    stored as float16 unless ``exact`` (see the module docstring).
    """
    out = check_target_file(out_file, overwrite=overwrite, option="--export")
    store = RecordStore(run_dir)
    manifest = store.manifest()
    metrics = store.metrics(manifest)

    payload_tensors: list[dict[str, dict[str, Any]]] = []
    previous: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for index, entry in enumerate(manifest["snapshots"]):
        encoded = {}
        for name, t in store.snapshot_tensors(index, manifest).items():
            if t["dtype"] not in _DTYPES:
                raise InputError(f"{entry['file']}: {name} has dtype {t['dtype']}, which cannot be exported")
            # weights stay float32 as recorded: the page runs the model on them (static/forward.js)
            weight = manifest["tensors"].get(name, {}).get("kind") == "weight"
            encoded[name], bits = _encode(t, previous.get(name), exact or weight)
            previous[name] = {"shape": t["shape"], "bits": bits}
            sizes[name] = sizes.get(name, 0) + len(encoded[name]["b64"])
        for name in set(previous) - set(encoded):  # not stored in this snapshot: the next one starts afresh
            previous.pop(name)
        payload_tensors.append(encoded)

    # layout changes and sums of other tensors are rebuilt by the page, not stored twice
    derived = _derivable(manifest)
    for tensors in payload_tensors:
        for name in derived:
            tensors.pop(name, None)
    for name in derived:
        sizes.pop(name, None)
    manifest["export_derived"] = derived

    # the size bound: leave out whole tensors, lowest priority and largest first
    meta = {name: manifest["tensors"].get(name, {"kind": "activation", "priority": 3}) for name in sizes}
    budget = int(max_bytes) - 2_000_000  # room for the page itself, the manifest and the metrics
    sources = frozenset(n for d in derived.values() for n in d["from"])
    left_out = choose_dropped(sizes, meta, budget, keep_from=KEEP, weights_first=True, protected=sources)
    total = sum(sizes.values()) - sum(sizes[n] for n in left_out)
    if total > budget:
        raise InputError(f"the recording needs {total} bytes even without {len(left_out)} tensors; "
                         f"raise max_bytes ({int(max_bytes)})")
    gone = set(left_out)
    # aliases of a left-out tensor go with it
    for entry in manifest["snapshots"]:
        gone.update(a for a, target in entry.get("aliases", {}).items() if target in gone)
    manifest["export_dropped"] = sorted(gone)
    manifest["export_dtype"] = "float32" if exact else "float16"
    for name in gone:
        manifest["tensors"].pop(name, None)
    payload_tensors = [{n: e for n, e in tensors.items() if n not in gone} for tensors in payload_tensors]
    payload = {"manifest": manifest, "metrics": metrics, "tensors": payload_tensors}

    data = f'<script type="application/json" id="glassbert-data">{_json_for_script(payload)}</script>'
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
