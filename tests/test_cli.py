"""The `glassbert` command as a user types it: outputs, files, and one clear line on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from glassbert.cli import main

COMMANDS = ["demo", "tokenize", "trace", "embed", "similarity", "fill-mask", "vocab", "pretrain", "finetune",
            "classify", "explore", "data", "explain", "params", "tag", "answer"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    if command not in ("vocab", "data"):
        assert "Examples:" in result.output and f"glassbert {command}" in result.output


def test_a_subcommand_typed_without_its_group_names_the_whole_command():
    result = CliRunner().invoke(main, ["fetch", "sotu"], prog_name="glassbert")
    assert result.exit_code == 2
    assert "No such command 'fetch': did you mean 'glassbert data fetch'?" in result.output
    assert "did you mean 'main vocab train'?" in run("train").output
    assert "No such command 'nonsense'." in run("nonsense").output


def test_tokenize(minilm_path):
    result = run("tokenize", str(minilm_path), "I love cats!", "He hates pineapple pizza.")
    assert result.exit_code == 0, result.output
    assert "[1] [CLS] he hates pine ##apple pizza . [SEP]" in result.output
    assert "attention_mask : tensor([[1, 1, 1, 1, 1, 1, 0, 0]," in result.output


def test_trace_layers(minilm_path):
    result = run("trace", "minilm", "I love cats!", "--layers", "6", "--values")
    assert result.exit_code == 0, result.output
    assert "----------------- BERT LAYER 1 -----------------\n\n...\n" in result.output
    assert "Attention Scores Divided by Scalar:\ntorch.Size([1, 12, 6, 6])   mean" in result.output
    assert "First Token [CLS] Tanh Activation Function:\ntorch.Size([1, 384])" in result.output
    assert run("trace", "minilm", "x", "--layers", "9").exit_code != 0


@pytest.mark.slow
def test_embed_files_and_similarity(tmp_path):
    npy, jsonl = tmp_path / "v.npy", tmp_path / "v.jsonl"
    texts = ["nice movie indeed", "I love python programming"]
    assert run("embed", "minilm", *texts, "--out", str(npy)).exit_code == 0
    vectors = np.load(npy)
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    lines = tmp_path / "in.txt"
    lines.write_text("\n".join(texts) + "\n")
    assert run("embed", "minilm", "--input", str(lines), "--out", str(jsonl)).exit_code == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["text"] for r in rows] == texts
    assert np.allclose(np.array([r["vector"] for r in rows]), vectors, atol=1e-6)
    table = tmp_path / "in.csv"  # a table's column, not its lines (it embedded "text,label" and each row whole)
    table.write_text("label,review\n1,nice movie indeed\n0,I love python programming\n")
    assert run("embed", "minilm", "--input", str(table), "--text-column", "review", "--out", str(tmp_path / "t.npy"),
               ).exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "t.npy"), vectors, atol=1e-6)
    wrong = run("embed", "minilm", "--input", str(table))
    assert wrong.exit_code == 1 and "no column 'text'; the header is ['label', 'review']" in wrong.output
    result = run("similarity", "minilm", "The fair was packed with fun rides.", "We went to the carnival.",
                 "The judge was fair.")
    assert result.exit_code == 0 and "1.000" in result.output


@pytest.mark.parametrize("args, message", [
    (("embed", "no-such-model", "x"), "no-such-model: no such model directory"),
    (("embed", "minilm"), "give TEXTS or --input FILE"),
    (("embed", "minilm", "x", "--out", "v.csv"), "use a .npy or .jsonl file name"),
    (("similarity", "minilm", "only one"), "at least two texts"),
    (("pretrain", "--steps", "3"), "missing --corpus, --vocab (or --from MODEL), --out"),
    (("explore", "."), "holds no recording"),
    (("explore", "runs/gone"), "runs/gone: no such model directory"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_fill_mask_needs_a_mask(tmp_path):
    from glassbert.demo import run_demo
    run_demo(tmp_path / "demo", epochs=5, record=None, progress=False, echo=lambda s: None)
    result = run("fill-mask", str(tmp_path / "demo"), "the cat chased the mouse")
    assert result.exit_code != 0 and "no [MASK] in 'the cat chased the mouse'" in result.output


def test_the_commands_hold_no_logic_and_fit_in_modules_under_500_lines():
    """Issue 28: every command parses, calls one library function, prints; the command modules stay small."""
    import ast
    from pathlib import Path

    import glassbert.cli
    folder = Path(glassbert.cli.__file__).parent
    for path in sorted(folder.glob("*.py")):
        assert len(path.read_text().splitlines()) < 500, path
        if path.name != "base.py":  # the group and the shared options
            tree = ast.parse(path.read_text())
            helpers = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                       and not any("command" in ast.unparse(d) or "group" in ast.unparse(d) for d in node.decorator_list)]
            assert helpers == [], f"{path.name}: helpers beyond click plumbing: {helpers}"
