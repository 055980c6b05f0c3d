"""The explorer: a local, read-only web page over a run's recorded tensors, or one exported HTML file.

    from glassbert.explorer import serve, export_html
    serve("runs/demo")                          # http://127.0.0.1:PORT/ until Ctrl-C
    export_html("runs/demo", "demo.html")       # one self-contained file, works offline
    explore("minilm", texts=["The cat sat."])   # what `glassbert explore` does: record, then serve or export

Recording is :mod:`glassbert.recording` (``Recorder`` during training, ``record_once`` for any checkpoint).
"""
from glassbert.explorer.export import export_html
from glassbert.explorer.server import ExplorerServer, make_server, serve
from glassbert.explorer.session import explore
from glassbert.recording.store import read_metrics

__all__ = ["explore", "serve", "make_server", "ExplorerServer", "export_html", "read_metrics"]
