"""Progress bars: in place on a terminal; through a pipe, whole lines at most one per interval, each ended."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from glassbert import progress
from glassbert.progress import LineWriter, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_through_a_pipe_a_fast_bar_is_two_whole_lines():
    out = io.StringIO()
    with progress_bar(total=1000, desc="work", file=out) as bar:
        for _ in range(1000):
            bar.update(1)
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 2, lines  # the first and the last: the updates between fall inside one interval
    assert lines[0].startswith("work:   0%") and lines[1].startswith("work: 100%") and "1000/1000" in lines[1]


def test_through_a_pipe_each_interval_is_one_line(monkeypatch):
    monkeypatch.setattr(progress, "PIPE_INTERVAL_S", 0.0)  # every update is past the interval
    out = io.StringIO()
    for _ in progress_bar(range(5), desc="steps", file=out, miniters=1):
        pass
    counts = [line.split("|")[2].split()[0] for line in out.getvalue().splitlines()]
    assert counts[:6] == ["0/5", "1/5", "2/5", "3/5", "4/5", "5/5"] and set(counts[6:]) <= {"5/5"}, counts


def test_a_bar_that_is_not_left_leaves_no_half_line():
    out = io.StringIO()
    with progress_bar(total=3, desc="eval", leave=False, file=out) as bar:
        bar.update(3)
    out.write("next output\n")
    assert out.getvalue().splitlines()[-1] == "next output" and "\r" not in out.getvalue()


def test_the_line_writer_drops_clears_and_repeats():
    out = io.StringIO()
    w = LineWriter(out)
    w.write("\rbar 1")
    w.write("\rbar 1   ")   # redrawn unchanged (after tqdm.write)
    w.write("\r      \r")   # a clear
    w.write("\rbar 2\n")
    assert out.getvalue() == "bar 1\nbar 2\n"


def test_a_nested_bar_through_a_pipe_writes_no_cursor_moves():
    out = io.StringIO()
    with progress_bar(total=2, desc="train", file=out) as outer:
        for _ in progress_bar(range(3), desc="eval", leave=False, file=out):  # tqdm places it one line down
            pass
        outer.update(2)
    assert "\x1b" not in out.getvalue() and out.getvalue().splitlines()[-1].startswith("train: 100%")


def test_on_a_terminal_the_bar_redraws_in_place():
    out = _Terminal()
    with progress_bar(total=2, desc="tty", file=out, mininterval=0) as bar:
        bar.update(1)
        bar.update(1)
    assert out.getvalue().count("\r") >= 2


@pytest.mark.slow
def test_a_command_piped_prints_its_bar_as_lines(tmp_path):
    """`glassbert demo` through a pipe: the training bar is whole lines; the text after it starts a line."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", "glassbert", "demo", "--out", str(tmp_path / "run"), "--epochs", "300", "--no-record"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout
    assert "\r" not in result.stdout
    bar = [line for line in result.stdout.splitlines() if line.startswith("train:")]
    assert len(bar) == 2 and "300/300" in bar[-1], bar  # 0% and 100%: the run is shorter than the interval
    after = result.stdout.splitlines()[result.stdout.splitlines().index(bar[-1]) + 1:]
    assert after and not after[0].startswith("train")
