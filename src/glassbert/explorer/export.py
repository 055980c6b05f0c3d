"""Export a recording as ONE self-contained HTML file: the page, its CSS and JS, the manifest, the
metrics and the tensors (base64 typed arrays) inlined. It opens offline from disk, with no server.

Size bound: when the tensors would make the file larger than ``max_bytes``, whole tensors are left
out (the same priority order as the recorder: weights first, largest first, then redundant
activations ...); the page marks them as not exported and ``manifest["export_dropped"]`` lists them.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from glassbert.capture import KEEP
from glassbert.errors import InputError
from glassbert.explorer.server import STATIC_DIR
from glassbert.recording.store import RecordStore, choose_dropped
from glassbert.runfiles import atomic_write_text, check_target_file

DEFAULT_EXPORT_BYTES = 100_000_000
_DTYPES = {"F16": "f16", "F32": "f32", "I32": "i32", "I64": "i64", "BF16": "bf16"}


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside <script> and holds no '//' (so no URL-looking text survives)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("/", "\\/").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def export_html(run_dir: str | Path, out_file: str | Path, max_bytes: int | float = DEFAULT_EXPORT_BYTES, *,
                overwrite: bool = False) -> Path:
    """Write the explorer page for ``run_dir`` with all its data into the single file ``out_file``.

    An existing ``out_file`` is refused (ExistsError) unless ``overwrite``; the file is written atomically,
    so a failed or interrupted export leaves the old file (or none), never half a page.
    """
    out = check_target_file(out_file, overwrite=overwrite, option="--export")
    store = RecordStore(run_dir)
    manifest = store.manifest()
    metrics = store.metrics(manifest)

    snaps: list[dict[str, dict[str, Any]]] = []
    for entry in manifest["snapshots"]:
        tensors = store.snapshot_raw(entry)
        for name, t in tensors.items():
            if t["dtype"] not in _DTYPES:
                raise InputError(f"{entry['file']}: {name} has dtype {t['dtype']}, which cannot be exported")
        snaps.append(tensors)

    # the size bound: leave out whole tensors, lowest priority and largest first
    sizes: dict[str, int] = {}
    for tensors in snaps:
        for name, t in tensors.items():
            sizes[name] = sizes.get(name, 0) + (len(t["raw"]) + 2) // 3 * 4
    meta = {name: manifest["tensors"].get(name, {"kind": "activation", "priority": 3}) for name in sizes}
    budget = int(max_bytes) - 2_000_000  # room for the page itself, the manifest and the metrics
    left_out = choose_dropped(sizes, meta, budget, keep_from=KEEP, weights_first=True)
    total = sum(sizes.values()) - sum(sizes[n] for n in left_out)
    if total > budget:
        raise InputError(f"the recording needs {total} bytes even without {len(left_out)} tensors; "
                         f"raise max_bytes ({int(max_bytes)})")
    gone = set(left_out)
    # aliases of a left-out tensor go with it
    for entry in manifest["snapshots"]:
        gone.update(a for a, target in entry.get("aliases", {}).items() if target in gone)
    manifest["export_dropped"] = sorted(gone)
    for name in gone:
        manifest["tensors"].pop(name, None)

    payload_tensors = []
    for tensors in snaps:
        payload_tensors.append({
            name: {"dtype": _DTYPES[t["dtype"]], "shape": t["shape"],
                   "b64": base64.b64encode(t["raw"]).decode("ascii")}
            for name, t in tensors.items() if name not in gone})
    payload = {"manifest": manifest, "metrics": metrics, "tensors": payload_tensors}

    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    if re.search(r"</style", css, re.I) or re.search(r"</script", js, re.I):
        raise InputError("static assets cannot be inlined (they contain a closing tag)")
    link = re.compile(r'<link rel="stylesheet" href="static/style.css">')
    script = re.compile(r'<script src="static/app.js"></script>')
    if not link.search(html) or not script.search(html):
        raise InputError("index.html does not reference static/style.css and static/app.js as expected")
    html = link.sub(lambda _: f"<style>\n{css}\n</style>", html, count=1)
    data = f'<script type="application/json" id="glassbert-data">{_json_for_script(payload)}</script>'
    html = script.sub(lambda _: f"{data}\n<script>\n{js}\n</script>", html, count=1)
    if "://" in html:
        raise InputError("export would contain a URL; refusing to write a page that is not self-contained")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    return out
