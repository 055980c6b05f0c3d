"""`glassbert explore`'s set-up: a recorded run, or a model recorded on a few texts, served or exported.

    explore("runs/demo")                                        # serve the run's recording
    explore("minilm", texts=["The cat chased the mouse."])      # record a snapshot first (a temporary one)
    explore("runs/demo", export="demo.html")                    # one self-contained file instead of serving
"""
from __future__ import annotations

import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import InputError
from ..recording import has_recording, record_model
from ..threads import set_threads_for
from .export import DEFAULT_EXPORT_BYTES, export_html
from .server import serve


def explore(target: str | Path, texts: Sequence[str] = (), pair: bool = False, out: str | Path | None = None,
            model: str | Path | None = None, export: str | Path | None = None, host: str = "127.0.0.1",
            port: int = 8765, open_browser: bool = False, overwrite: bool = False,
            echo: Callable[[str], None] = print, max_length: int | None = None,
            precision: str = "fp32", threads: int | None = None, export_mb: float | None = None) -> Path | None:
    """Open TARGET in the explorer: a run with a recording as it is; a model (or any ``texts``) recorded first
    as one snapshot on ``texts``, into ``out`` (default: a temporary directory, deleted on return).

    ``model``: what the page's live what-if runs (default: the run's own, or TARGET when it is a model).
    ``export``: write one self-contained HTML file and return its path instead of serving until Ctrl-C or
    SIGTERM (both end the server and delete a temporary snapshot); ``export_mb``: its size bound in MB (default
    25: explorer.export.DEFAULT_EXPORT_BYTES; a larger one can hold the weights the page runs the what-if on). ``max_length`` and ``precision`` (fp32, or bf16
    autocast) are how a model is recorded on ``texts``. ``threads``: this process's intra-op threads, for the
    recording and the what-if (default: chosen for TARGET's model, as the command chooses: glassbert.threads)."""
    set_threads_for(threads, target)
    run_dir = Path(target)
    with tempfile.TemporaryDirectory(prefix="glassbert-explore-") as scratch:
        if texts or not has_recording(run_dir):
            model = model or target
            run_dir = Path(out) if out else Path(scratch) / "snapshot"
            record_model(target, list(texts), run_dir, pair=pair, overwrite=overwrite, max_length=max_length,
                         precision=precision)
            echo(f"recorded one snapshot of {target} on {len(texts)} input(s)" + (f" in {run_dir}" if out else ""))
        elif out:
            raise InputError(f"{target} is a recorded run: --out applies only when a model is recorded")
        if export:
            bound = export_mb * 1e6 if export_mb else DEFAULT_EXPORT_BYTES
            notes: list[str] = []
            path = export_html(run_dir, export, bound, overwrite=overwrite, model=model, say=notes.append)
            echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in any browser, no network needed")
            for note in notes:
                echo(note)
            return path
        # a `kill` ends the server as Ctrl-C does, so a temporary snapshot is deleted
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        try:
            serve(run_dir, host=host, port=port, open_browser=open_browser, model=model)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return None


__all__ = ["explore"]
