"""One vocabulary of options: the table in docs/options.md is read from the commands, one spelling per meaning,
and old spellings still parse, silently."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from glassbert.cli import main
from glassbert.cli import base as opt
from glassbert.cli.base import option_table, options_in_use, vocabulary_problems, with_option_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "options.md"

# commands that run a model, and those of them that read a user's text
RUN_A_MODEL = {"answer", "classify", "demo", "embed", "explain", "explore", "fill-mask", "finetune", "pretrain",
               "serve", "similarity", "tag", "trace"}
READ_TEXT = RUN_A_MODEL - {"demo"} | {"tokenize"}

# spellings that once meant the same thing: at most one of each group may be shown
SYNONYMS = [{"--out", "--output", "--dest", "--png", "--json", "--export-dir"},
            {"--max-length", "--max-seq-length"}, {"--top-k", "--n-best"}, {"--nbest-out", "--nbest-output"},
            {"--resume", "--resume-dir"}]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_the_doc_holds_the_table_the_commands_give():
    doc = DOC.read_text(encoding="utf-8")
    assert with_option_table(doc) == doc, (
        "docs/options.md is out of date: python -c \"from glassbert.cli.base import write_option_table; "
        "write_option_table()\"")


def test_one_spelling_per_meaning_and_one_meaning_per_spelling():
    assert vocabulary_problems() == []
    shown = set(options_in_use())
    for group in SYNONYMS:
        assert len(group & shown) <= 1, f"one meaning spelled {sorted(group & shown)}"


def test_two_spellings_of_one_meaning_are_caught():
    """The check itself: a command that spells --out as --output, one that gives --seed its own meaning."""
    @click.group()
    def group():
        pass

    @group.command()
    @opt.out(help="Write here.")
    def one(out):
        pass

    @group.command()
    @click.option("--output", cls=opt.Option, meaning=opt.out.meaning)
    @click.option("--seed", type=int, help="A seed of its own.")
    def two(output, seed):
        pass

    @group.command()
    @opt.seed()
    def three(seed):
        pass

    problems = vocabulary_problems(group)
    assert any("2 spellings (--out, --output)" in p for p in problems), problems
    assert any(p.startswith("--seed means 2 things") for p in problems), problems
    assert any(p.startswith("--seed is declared in several commands") for p in problems), problems
    assert "| `--out` | " in option_table(group)


def test_every_command_that_runs_a_model_takes_precision_and_max_length_where_it_reads_text():
    table = options_in_use()
    assert RUN_A_MODEL <= set(table["--precision"]["commands"])
    assert READ_TEXT <= set(table["--max-length"]["commands"])
    assert RUN_A_MODEL <= set(table["--threads"]["commands"])


def test_every_option_says_what_it_is():
    for name, row in options_in_use().items():
        assert all(row["meanings"]), f"{name} has no help text ({', '.join(row['commands'])})"


@pytest.mark.parametrize("args, hidden", [
    (["classify", "--help"], "--output"), (["tag", "--help"], "--output"), (["answer", "--help"], "--n-best"),
    (["answer", "--help"], "--nbest-output"), (["pretrain", "--help"], "--max-seq-length"),
    (["explain", "--help"], "--png"), (["explain", "--help"], "--json"), (["explain", "--help"], "--steps"),
    (["data", "fetch", "--help"], "--dest"), (["embed", "--help"], "pooled")])
def test_old_spellings_are_hidden_from_help(args, hidden):
    result = run(*args)
    assert result.exit_code == 0 and hidden not in result.output


def test_old_spellings_still_parse_silently(tmp_path, minilm_path):
    """The README's old lines still work and print nothing extra: --pooling pooled, explore's --pair flag."""
    old = run("embed", "minilm", "a cat", "--pooling", "pooled", "--out", str(tmp_path / "a.npy"))
    new = run("embed", "minilm", "a cat", "--pooling", "pooler", "--out", str(tmp_path / "b.npy"))
    assert old.exit_code == 0 and new.exit_code == 0, old.output + new.output
    assert old.output.replace("a.npy", "b.npy") == new.output
    bad = run("embed", "minilm", "a cat", "--pooling", "max")
    assert bad.exit_code == 2 and "'mean', 'cls', 'pooler'" in bad.output and "pooled" not in bad.output


def test_a_bad_value_names_the_shown_spelling():
    result = run("pretrain", "--max-seq-length", "2")
    assert result.exit_code == 2 and "'--max-length'" in result.output and "--max-seq-length" not in result.output


def test_resume_is_one_option_on_both_training_commands():
    assert "--resume alone continues the run in --out" in run("pretrain", "--resume").output
    assert "--resume alone continues the run in --out" in run(
        "finetune", "minilm", "--train", str(DOC), "--resume").output
    both = run("finetune", "minilm", "--train", str(DOC), "--resume", "runs/a", "--out", "runs/b")
    assert both.exit_code == 2 and "name two runs" in both.output
