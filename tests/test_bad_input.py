"""Bad input as a careless user or an attacker gives it: one clear line and a non-zero exit, never a
traceback, never a silent default; and no command that writes destroys what is already there.

The table below is the sweep of the issue "Nothing lost, no traceback": each row is a command line, the
fragment its one-line error must hold, and the exit code (1: our error, 2: click's usage error). Paths
in braces are filled in from the fixtures.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from glassbert.cli import main

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
LABELS = ["good", "bad"]


def run(*args: str, cwd: Path | None = None):
    if cwd is None:
        return CliRunner().invoke(main, list(args))
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)


def ok(result) -> None:
    assert result.exit_code == 0, result.output


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path → SHA-256 of its bytes)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ─── fixtures: small real runs and broken copies of them ─────────────────────────────────────


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-input")


@pytest.fixture(scope="module")
def vocab(area) -> Path:
    ok(run("vocab", "train", "--corpus", str(CORPUS), "--size", "600", "--out", str(area / "vocab")))
    return area / "vocab"


def pretrain_line(vocab: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--corpus", str(CORPUS), "--vocab", str(vocab), "--out", str(out), "--preset", "tiny",
            "--max-seq-length", "64", "--batch-size", "8", "--steps", "2", "--save-every", "1", *extra]


@pytest.fixture(scope="module")
def pretrained(area, vocab) -> Path:
    """A finished 2-step pretraining run (it keeps its checkpoint)."""
    ok(run(*pretrain_line(vocab, area / "run")))
    return area / "run"


def table(path: Path, rows: list[list[str]], header=("text", "label")) -> Path:
    import csv
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def train_csv(area) -> Path:
    words = ["call me ishmael", "the whale is white", "some years ago", "never mind how long"]
    return table(area / "train.csv", [[w, LABELS[i % 2]] for i, w in enumerate(words * 2)])


@pytest.fixture(scope="module")
def classifier(area, pretrained, train_csv) -> Path:
    ok(run("finetune", str(pretrained), "--train", str(train_csv), "--out", str(area / "clf"), "--epochs", "1",
           "--batch-size", "4", "--max-length", "16"))
    return area / "clf"


@pytest.fixture(scope="module")
def files(area, pretrained) -> dict[str, Path]:
    """Broken inputs, each next to a good one."""
    d = area / "files"
    d.mkdir()
    out: dict[str, Path] = {}
    out["bad_utf8"] = d / "bad.txt"
    out["bad_utf8"].write_bytes(b"a fine line\nthen caf\xe9 in latin-1\n")
    out["empty"] = d / "empty.txt"
    out["empty"].write_text("\n  \n")
    out["long_csv"] = table(d / "long.csv", [["word " * 30_000, "good"], ["short one", "bad"]])
    out["empty_label"] = table(d / "empty-label.csv", [["call me", "good"], ["the whale", ""]] * 4)
    out["existing"] = d / "existing.npy"
    out["existing"].write_bytes(b"precious")

    def broken_copy(name: str, edit) -> Path:
        target = d / name
        shutil.copytree(pretrained, target)
        edit(target)
        return target

    out["big_config"] = broken_copy("big-config", lambda t: (t / "config.json").write_text(
        json.dumps({**json.loads((t / "config.json").read_text()), "hidden_size": "big"})))
    out["bad_vocab"] = broken_copy("bad-vocab", lambda t: (
        (t / "tokenizer.json").unlink(), (t / "vocab.txt").write_bytes((t / "vocab.txt").read_bytes() + b"\xff\xfe\n")))
    out["bad_args"] = broken_copy("bad-args", lambda t: (t / "pretrain_args.json").write_text('{"corpus": '))
    out["cut_weights"] = broken_copy("cut-weights", lambda t: (t / "checkpoint" / "model.safetensors").write_bytes(
        (t / "checkpoint" / "model.safetensors").read_bytes()[:1000]))
    out["bad_tokenizer"] = broken_copy("bad-tokenizer", lambda t: (t / "tokenizer.json").write_text("garbage{"))
    out["blank_csv"] = table(d / "blank.csv", [["", "good"], ["  ", "bad"]] * 4)
    out["bad_state"] = broken_copy("bad-state", lambda t: (t / "checkpoint" / "trainer_state.pt").write_bytes(
        b"\x80\x04garbage, not a torch file" * 10))
    return out


@pytest.fixture(scope="module")
def recorded(area) -> Path:
    from glassbert.demo import run_demo
    run_demo(area / "demo", epochs=3, record="epochs=0,last", progress=False, echo=lambda s: None)
    return area / "demo"


@pytest.fixture(scope="module")
def bad_manifest(area, recorded) -> Path:
    target = area / "bad-manifest"
    shutil.copytree(recorded, target)
    (target / "record" / "manifest.json").write_text('{"version": 2,')
    return target


@pytest.fixture(scope="module")
def search_index(area, pretrained) -> Path:
    """`glassbert index` of the tiny pretraining run over the corpus (mean pooling)."""
    ok(run("index", str(pretrained), "--input", str(CORPUS), "--out", str(area / "index"), "--max-length", "32"))
    return area / "index"


# ─── the table ─────────────────────────────────────────────────────────────────────────────────
# (command line, fragment of the one-line message, exit code)
CASES = [
    # tracebacks before
    (["tokenize", "minilm", "hello", "--max-length", "-3"], "--max-length", 2),
    (["fill-mask", "minilm", "the [MASK] sat"], "minilm has no trained MLM head", 1),  # it printed random words
    (["pretrain", "--resume", "{cut_weights}"], "checkpoint/model.safetensors is damaged", 1),
    (["pretrain", "--resume", "{bad_state}"], "checkpoint/trainer_state.pt is damaged", 1),
    (["finetune", "{pretrained}", "--train", "{train_csv}", "--out", "{pretrained}"], "which this command reads", 1),
    # exit 0 before
    (["tokenize", "minilm", "hello", "--max-length", "0"], "--max-length", 2),
    (["trace", "minilm", "hello", "--layers", "3-1"], "empty range", 2),
    (["trace", "minilm", "hello", "--layers", "0"], "numbered from 1", 2),
    (["finetune", "{pretrained}", "--train", "{empty_label}", "--out", "{new}", "--batch-size", "2"],
     "empty-label.csv line 3", 1),
    # errors that did not say where
    (["embed", "minilm", "--input", "{bad_utf8}"], "bad.txt line 2", 1),
    (["tokenize", "{bad_vocab}", "hello"], "vocab.txt line", 1),
    (["embed", "{big_config}", "hello"], "hidden_size", 1),
    (["pretrain", "--resume", "{bad_args}"], "pretrain_args.json line 1", 1),
    (["explore", "{bad_manifest}", "--export", "{new}.html"], "manifest.json", 1),
    (["tokenize", "minilm", "caf\udce9"], "UTF-8", 1),
    (["embed", "minilm", "--input", "{empty}"], "empty.txt holds no text", 1),
    # exit 0 before (issue 32): a model of blank texts; an export that then fails to load
    (["finetune", "{pretrained}", "--train", "{blank_csv}", "--out", "{new}", "--batch-size", "2"],
     "blank.csv: every text in column 'text' is blank", 1),
    (["export", "{bad_tokenizer}", "--out", "{new}"], "tokenizer.json line 1", 1),
    # resuming where the corpus is not
    (["pretrain", "--resume", "{pretrained}", "--corpus", "{bad_utf8}"], "bad.txt line 2", 1),
    (["pretrain", "--resume", "{pretrained}", "--corpus", "{train_csv}"], "not the text the run was started on", 1),
    (["pretrain", "--resume", "{pretrained}", "--batch-size", "4"], "cannot be changed on resume", 2),
    (["pretrain", "--resume", "{pretrained}", "--steps", "1"], "already at step 2", 1),
    # targets that exist
    (["embed", "minilm", "hello", "--out", "{existing}"], "existing.npy already exists", 1),
    (["explore", "{recorded}", "--export", "{existing}"], "existing.npy already exists", 1),
    (["classify", "{classifier}", "nice", "--output", "{existing}"], "existing.npy already exists", 1),
    (["explore", "minilm", "--text", "hi", "--out", "{pretrained}", "--export", "{new}.html"], "already holds files",
     1),
    # semantic search: index, search, serve --index
    (["index", "minilm", "--input", "{empty}", "--out", "{new}"], "empty.txt holds no text", 1),
    (["index", "minilm", "--input", "{bad_utf8}", "--out", "{new}"], "bad.txt line 2", 1),
    (["index", "minilm", "--input", "{train_csv}", "--out", "{pretrained}"], "already holds files", 1),
    (["index", "minilm", "--input", "{train_csv}", "--text-column", "review", "--out", "{new}"], "no column 'review'",
     1),
    (["search", "{new}", "a query"], "no such index", 1),
    (["search", "{pretrained}", "a query"], "is not a glassbert index", 1),
    (["search", "{search_index}", ""], "query 0 is empty", 1),
    (["search", "{search_index}"], "give QUERIES or --input", 2),
    (["search", "{search_index}", "a query", "--top-k", "0"], "--top-k", 2),
    (["search", "{search_index}", "a query", "--out", "{new}.txt"], ".jsonl", 2),
    (["serve", "minilm", "--index", "{search_index}", "--port", "0"], "not with", 1),
    (["serve", "{pretrained}", "--index", "{search_index}", "--pooling", "cls", "--port", "0"], "pooling", 1),
]


@pytest.mark.parametrize("args, fragment, code", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_gets_one_line(args, fragment, code, request, files, area, tmp_path, monkeypatch):
    names = {**files, "new": tmp_path / "new", "area": area}
    for key in ("pretrained", "train_csv", "classifier", "recorded", "bad_manifest", "vocab", "search_index"):
        if any("{" + key + "}" in a for a in args):
            names[key] = request.getfixturevalue(key)
    argv = [a.format(**names) if "{" in a else a for a in args]
    monkeypatch.chdir(tmp_path)
    result = run(*argv)
    assert result.exit_code == code, result.output
    assert fragment in result.output, result.output
    assert "Traceback" not in result.output and "weights_only" not in result.output
    if code == 1:
        assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1, result.output


def test_long_csv_fields_are_read(files, classifier, tmp_path):
    """A cell over csv's default 131,072-character limit is a long text, not an error."""
    result = run("classify", str(classifier), "--input", str(files["long_csv"]), "--output", str(tmp_path / "p.csv"))
    ok(result)
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 3


@pytest.mark.slow
def test_the_truncation_warning_is_one_line_without_source(minilm_path):
    result = subprocess.run([sys.executable, "-m", "glassbert", "tokenize", "minilm", "word " * 40, "--max-length",
                             "8"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "truncated" in lines[0], result.stderr


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only our own errors become one line; anything else is a bug and must show where it happened."""
    import glassbert.tokenizer as tokenizer

    def broken(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr(tokenizer.Tokenizer, "from_pretrained", broken)
    result = run("tokenize", "minilm", "hello")
    assert isinstance(result.exception, RuntimeError)
    monkeypatch.undo()
    result = run("-v", "tokenize", "no-such-model", "hello")  # -v: our errors keep their traceback too
    assert isinstance(result.exception, FileNotFoundError)


def _explore_subprocess(*args: str) -> subprocess.CompletedProcess:
    """explore would serve for ever if it wrongly started: run it where a timeout can stop it."""
    return subprocess.run([sys.executable, "-m", "glassbert", "explore", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_explore_on_a_bad_host_or_a_busy_port(recorded):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _explore_subprocess(str(recorded), "--port", str(port))
    assert result.returncode == 1 and f"{port}" in result.stderr and "Traceback" not in result.stderr, result.stderr
    for host in ("999.1.1.1", "no-such-host.invalid"):
        result = _explore_subprocess(str(recorded), "--host", host, "--port", "0")
        assert result.returncode == 1 and host in result.stderr and "Traceback" not in result.stderr, result.stderr


# ─── nothing lost: every command that writes refuses a target that holds files ──────────────────


def refused_and_untouched(target: Path, *args: str, fragment: str = "already") -> None:
    before = snapshot(target) if target.is_dir() else target.read_bytes()
    result = run(*args)
    assert result.exit_code != 0, result.output
    assert fragment in result.output and "Traceback" not in result.output, result.output
    assert (snapshot(target) if target.is_dir() else target.read_bytes()) == before


def test_pretrain_over_a_run(pretrained, vocab, tmp_path):
    refused_and_untouched(pretrained, *pretrain_line(vocab, pretrained))
    copy = tmp_path / "copy"
    shutil.copytree(pretrained, copy)
    (copy / "note.txt").write_text("from an earlier run")
    ok(run(*pretrain_line(vocab, copy, "--overwrite")))
    assert not (copy / "note.txt").exists(), "--overwrite replaces the run whole, it does not mix two runs"
    assert (copy / "checkpoint").is_dir()


def test_vocab_train_over_a_run(pretrained):
    refused_and_untouched(pretrained, "vocab", "train", "--corpus", str(CORPUS), "--size", "300",
                          "--out", str(pretrained))


def test_demo_over_a_run(pretrained):
    refused_and_untouched(pretrained, "demo", "--out", str(pretrained), "--epochs", "2")


def test_finetune_over_a_run(pretrained, train_csv):
    refused_and_untouched(pretrained, "finetune", str(pretrained), "--train", str(train_csv), "--out",
                          str(pretrained), fragment="which this command reads")


@pytest.mark.parametrize("command", ["finetune", "pretrain", "export", "vocab"])
def test_overwrite_refuses_a_target_that_holds_what_the_command_reads(command, pretrained, vocab, train_csv,
                                                                      tmp_path):
    """--overwrite replaces the target before writing: a target that is (or holds) the model, vocabulary,
    corpus or data file being read would lose it, so it is refused and left as it was."""
    run_copy = tmp_path / "run"
    shutil.copytree(pretrained, run_copy)
    corpus = run_copy / "corpus.txt"
    corpus.write_text(CORPUS.read_text(encoding="utf-8"), encoding="utf-8")
    data = run_copy / "train.csv"
    shutil.copy(train_csv, data)
    args = {
        "finetune": ["finetune", str(pretrained), "--train", str(data), "--out", str(run_copy), "--epochs", "1"],
        "pretrain": pretrain_line(run_copy, run_copy),  # --vocab is the run being replaced
        "export": ["export", str(run_copy), "--out", str(run_copy)],
        "vocab": ["vocab", "train", "--corpus", str(corpus), "--size", "300", "--out", str(run_copy)],
    }[command]
    refused_and_untouched(run_copy, *args, "--overwrite", fragment="which this command reads")


def test_export_of_a_damaged_tokenizer_writes_nothing(files, tmp_path):
    """Issue 32: the garbage tokenizer.json was copied into the export, which then failed to load."""
    result = run("export", str(files["bad_tokenizer"]), "--out", str(tmp_path / "exported"))
    assert result.exit_code == 1 and "tokenizer.json" in result.output, result.output
    assert not (tmp_path / "exported").exists()


def test_finetune_resume_keeps_a_lookalike_folder(pretrained, train_csv, tmp_path):
    """Issue 32: --resume into a user's folder holding best/, checkpoint/, metrics.jsonl (no glassbert run)
    deleted them and trained from step 0."""
    folder = tmp_path / "lookalike"
    for name in ("best/model.safetensors", "checkpoint/model.safetensors", "metrics.jsonl"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("mine")
    refused_and_untouched(folder, "finetune", str(pretrained), "--train", str(train_csv), "--out", str(folder),
                          "--resume", fragment="holds no run to continue")


def test_data_fetch_keeps_a_users_files(tmp_path):
    mine = tmp_path / "data" / "sotu"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my own notes")
    refused_and_untouched(mine, "data", "fetch", "sotu", "--dest", str(tmp_path / "data"))


def test_overwrite_never_empties_a_folder_glassbert_did_not_write(vocab, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    refused_and_untouched(folder, *pretrain_line(vocab, folder, "--overwrite"), fragment="did not write")


def test_overwrite_never_empties_the_working_directory(vocab, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")  # even one that looks like a model directory
    monkeypatch.chdir(tmp_path)
    refused_and_untouched(tmp_path, *pretrain_line(vocab, Path("."), "--overwrite"), fragment="working directory")


def test_a_moved_run_resumes_where_it_now_is(pretrained, tmp_path):
    """Resume writes into the directory given (not the one recorded at the start), from any working
    directory, and reads its vocabulary from the run itself."""
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(pretrained, moved)
    before = snapshot(pretrained)
    (tmp_path / "cwd").mkdir()
    result = run("pretrain", "--resume", str(moved), cwd=tmp_path / "cwd")
    ok(result)
    assert snapshot(pretrained) == before
    assert str(moved) in result.output
    saved = json.loads((moved / "pretrain_args.json").read_text())
    assert "out" not in saved and Path(saved["corpus"]).is_absolute()


@pytest.mark.slow
def test_resume_names_a_corpus_that_moved(pretrained, tmp_path):
    corpus = tmp_path / "corpus.txt"
    shutil.copy(CORPUS, corpus)
    run_dir = tmp_path / "run"
    shutil.copytree(pretrained, run_dir)
    args = json.loads((run_dir / "pretrain_args.json").read_text())
    (run_dir / "pretrain_args.json").write_text(json.dumps({**args, "corpus": str(tmp_path / "gone.txt")}))
    done = run("pretrain", "--resume", str(run_dir))  # a finished run needs no corpus to say so
    assert done.exit_code == 0 and "already finished" in done.output, done.output
    steps = str(args["steps"] + 1)  # training on does
    result = run("pretrain", "--resume", str(run_dir), "--steps", steps)
    assert result.exit_code == 1 and "gone.txt" in result.output and "--corpus" in result.output, result.output
    ok(run("pretrain", "--resume", str(run_dir), "--corpus", str(corpus), "--steps", steps))
