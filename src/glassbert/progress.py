"""The one way the package makes a progress bar: `progress_bar`, a tqdm bar that suits where it is drawn.

On a terminal it is tqdm's own bar, redrawn in place. Through a pipe or into a log file a bar redrawn with
``\\r`` is one endless line that the next output runs into, so there each update is a whole line of its own,
at most one every :data:`PIPE_INTERVAL_S` seconds (plus the first and the last), and a line that repeats
the one before it is not written again. In a Jupyter notebook it is tqdm's widget.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.autonotebook import tqdm as _auto_tqdm
from tqdm.std import tqdm as _std_tqdm

# Through a pipe: the fewest seconds between two lines of one bar.
PIPE_INTERVAL_S = 30.0

_IN_NOTEBOOK = _auto_tqdm is not _std_tqdm
_CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # what tqdm writes to place a nested bar's line


class LineWriter:
    """A file for tqdm that turns its in-place redraws (``\\r`` + text + padding) into whole lines.

    Clearing writes (``\\r`` and spaces) print nothing; a line equal to the last one written is skipped
    (tqdm redraws a bar unchanged after ``tqdm.write``); the cursor moves of nested bars (``ESC[A``) are
    dropped, as a log has no cursor.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._last: str | None = None

    def write(self, text: str) -> int:
        for piece in re.split(r"[\r\n]", _CURSOR_MOVES.sub("", text)):
            line = piece.rstrip()
            if line and line != self._last:
                self.stream.write(line + "\n")
                self._last = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    @property
    def encoding(self) -> str | None:  # tqdm draws unicode blocks only where the stream can take them
        return getattr(self.stream, "encoding", None)


def on_terminal(stream: Any = None) -> bool:
    """True when ``stream`` (default: standard error) is a terminal, where a bar may redraw in place;
    e.g. for a library's own bars: ``Tokenizer.train(..., show_progress=on_terminal())``."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, file: TextIO | None = None, **options: Any) -> _std_tqdm:
    """A tqdm bar (same arguments: total, desc, unit, initial, leave, disable, …) drawn on ``file``
    (default: standard error): in place on a terminal, as whole lines through a pipe (see the module)."""
    stream = sys.stderr if file is None else file
    if _IN_NOTEBOOK and file is None:
        return _auto_tqdm(iterable, **options)
    if on_terminal(stream):
        options.setdefault("dynamic_ncols", True)
        return _std_tqdm(iterable, file=stream, **options)
    options.setdefault("mininterval", PIPE_INTERVAL_S)
    options.setdefault("maxinterval", PIPE_INTERVAL_S)
    return _std_tqdm(iterable, file=LineWriter(stream), **options)


__all__ = ["progress_bar", "on_terminal", "LineWriter", "PIPE_INTERVAL_S"]
