"""How many threads a job uses: asked for, from the environment, by model size, shared under torchrun."""
from __future__ import annotations

import pytest
import torch

from glassbert import threads
from glassbert.errors import InputError
from glassbert.threads import choose_threads


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("OMP_NUM_THREADS", "GLASSBERT_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setattr(threads, "_busy_cores", lambda: 0.0)
    return monkeypatch


def test_asked_for_wins(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(5, hidden_size=7).threads == 5
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="threads must be a whole number"):
            choose_threads(bad)


def test_the_environment_wins_over_the_rule(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(hidden_size=768).threads == 3
    clean_env.setenv("GLASSBERT_THREADS", "2")
    assert choose_threads(hidden_size=768).threads == 2
    clean_env.setenv("GLASSBERT_THREADS", "many")
    with pytest.raises(InputError, match="GLASSBERT_THREADS='many'"):
        choose_threads()


def test_small_models_get_one_thread_big_ones_the_cores(clean_env):
    assert choose_threads(hidden_size=7).threads == 1      # the toy
    assert choose_threads(hidden_size=128).threads == 8    # tiny: 1.85x with 2 threads on a quiet 2-core machine
    assert choose_threads(hidden_size=768).threads == 8
    assert choose_threads(hidden_size=128, busy=8.0).threads == 1  # ...and 0.37x when the cores are busy


def test_a_busy_machine_gets_fewer_threads(clean_env):
    clean_env.setattr(threads, "_busy_cores", lambda: 6.2)
    choice = choose_threads(hidden_size=768)
    assert choice.threads == 2 and "busy" in choice.reason
    clean_env.setattr(threads, "_busy_cores", lambda: 20.0)
    assert choose_threads(hidden_size=768).threads == 1


def test_torchrun_processes_share_the_cores(clean_env):
    clean_env.setenv("LOCAL_WORLD_SIZE", "4")
    clean_env.setenv("OMP_NUM_THREADS", "1")  # torchrun's default for each process: not a choice
    assert choose_threads(hidden_size=768).threads == 2
    assert choose_threads(hidden_size=768, processes=3).threads == 2
    clean_env.setenv("GLASSBERT_THREADS", "1")  # an explicit choice is kept
    assert choose_threads(hidden_size=768).threads == 1


def test_the_toy_demo_runs_single_threaded_by_default(clean_env, tmp_path):
    from glassbert.demo import run_demo
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    lines: list[str] = []
    try:
        run_demo(tmp_path / "demo", epochs=2, record=None, progress=False, echo=lines.append)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert "1 thread (hidden size 7" in lines[0]


@pytest.mark.slow
def test_the_commands_take_threads_and_choose_for_the_model(clean_env, minilm_path):
    from click.testing import CliRunner

    from glassbert.cli import main
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, ["similarity", "minilm", "a cat", "a dog", "--threads", "3"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 3                     # asked
        result = CliRunner().invoke(main, ["similarity", "minilm", "a cat", "a dog"])
        assert result.exit_code == 0 and torch.get_num_threads() == 8   # MiniLM's hidden 384: the free cores
        clean_env.setattr(threads, "_busy_cores", lambda: 6.0)
        assert CliRunner().invoke(main, ["similarity", "minilm", "a cat", "a dog"]).exit_code == 0
        assert torch.get_num_threads() == 2                     # 6 of 8 cores busy with other work
        bad = CliRunner().invoke(main, ["embed", "minilm", "a cat", "--threads", "0"])
        assert bad.exit_code != 0 and "--threads" in bad.output
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_finetune_from_python_chooses_threads_as_the_command_does(clean_env, tmp_path):
    from helpers_tasks import tiny_bert, write_csv

    from glassbert import synthetic as S
    from glassbert.tasks.job import FinetuneArgs, finetune
    base = tiny_bert(tmp_path / "base")
    train = write_csv(tmp_path / "train.csv", ["text", "label"], S.make_sentiment(32, 1))

    def threads_after(out: str, **kwargs) -> int:
        torch.set_num_threads(1)
        finetune(FinetuneArgs(base, train, tmp_path / out, epochs=1, batch_size=16, max_length=16, progress=False,
                              quiet=True), **kwargs)
        return torch.get_num_threads()
    assert threads_after("chosen") == 8                 # tiny's hidden 128: the free cores, as `glassbert finetune`
    assert threads_after("asked", threads=3) == 3
    clean_env.setattr(threads, "_busy_cores", lambda: 6.0)
    assert threads_after("busy") == 2


# ─── the commands that view or serve a model choose as the others: in their library function ───────────
@pytest.fixture
def toy_dir(tmp_path):
    """The toy BERT (hidden 7: one thread unless asked) with its MLM and NSP heads and its tokenizer."""
    from helpers_record import toy_model, toy_tokenizer
    tok = toy_tokenizer()
    return toy_model(tok).save_pretrained(tmp_path / "toy", tokenizer=tok)


def _serve_without_serving(monkeypatch):
    """`serve` up to the point where it would block: bound, loaded, said where; then it stops."""
    from glassbert.serve.server import Server
    monkeypatch.setattr(Server, "run", lambda self: self.socket.close())


def _serve(model, tmp, **kw):
    from glassbert.serve import serve
    serve(model, port=0, echo=lambda line: None, **kw)


def _trace(model, tmp, **kw):
    from glassbert.trace import trace_texts
    trace_texts(model, ["the cat chased the mouse ."], echo=lambda line: None, **kw)


def _explain(model, tmp, **kw):
    from glassbert.explain import explain
    explain(model, ["the cat [MASK] the mouse ."], steps=2, **kw)


def _explore(model, tmp, **kw):
    from glassbert.explorer import explore
    explore(model, ["the cat chased the mouse ."], export=tmp / "page.html", overwrite=True, echo=lambda line: None,
            **kw)


# the library function of each command, called as from Python on MODEL (and a scratch folder)
VIEWS = {"serve": _serve, "trace": _trace, "explain": _explain, "explore": _explore}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_serve_trace_explain_explore_take_threads_from_python(name, clean_env, toy_dir, tmp_path):
    """Their --threads was applied by a wrapper of the command, so from Python threads= did nothing: now each
    library function chooses (asked: as asked; else for the model: the toy's hidden 7 gets one thread)."""
    _serve_without_serving(clean_env)
    torch.set_num_threads(2)
    VIEWS[name](toy_dir, tmp_path, threads=3)
    assert torch.get_num_threads() == 3
    VIEWS[name](toy_dir, tmp_path)
    assert torch.get_num_threads() == 1
    with pytest.raises(InputError, match="threads must be a whole number"):
        VIEWS[name](toy_dir, tmp_path, threads=0)


@pytest.mark.parametrize("argv", [
    ["serve", "{model}", "--port", "0"],
    ["trace", "{model}", "the cat chased the mouse ."],
    ["explain", "{model}", "the cat [MASK] the mouse .", "--n-steps", "2"],
    ["explore", "{model}", "--text", "the cat chased the mouse .", "--export", "{tmp}/page.html"],
], ids=lambda argv: argv[0])
def test_their_commands_pass_threads_to_the_library(argv, clean_env, toy_dir, tmp_path):
    from click.testing import CliRunner

    from glassbert.cli import main
    _serve_without_serving(clean_env)
    torch.set_num_threads(1)
    args = [a.format(model=toy_dir, tmp=tmp_path) for a in argv]
    result = CliRunner().invoke(main, [*args, "--threads", "3"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 3
