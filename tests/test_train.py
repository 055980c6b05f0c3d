"""Tests of the Trainer: learning, optimizer groups, schedule, clipping, accumulation, exact resume
after SIGKILL, atomic checkpoints, DDP == accumulation, non-finite loss, stop conditions, eval."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

import helpers_train as h
from glassbert import runfiles
from glassbert.errors import GlassbertError
from glassbert.train import (
    Callback, Evaluation, NonFiniteLossError, TrainConfig, Trainer, find_checkpoint, lr_factor, read_metrics,
)

HELPER = Path(h.__file__).resolve()
PY = sys.executable


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and identically in the subprocesses, on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def losses(out_dir: Path, split: str = "train") -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out_dir / "metrics.jsonl") if r["split"] == split}


def saved_weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(out_dir / "checkpoint" / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


# ----------------------------------------------------------------------------- learning & optimizer


def test_loss_falls_and_outputs_are_written(tmp_path):
    trainer = h.make_trainer(tmp_path, lr=3e-2, dropout=0.0, max_steps=60, schedule="constant", warmup_steps=0)
    summary = trainer.fit()
    curve = losses(tmp_path)
    first, last = sum(curve[s] for s in range(1, 6)) / 5, sum(curve[s] for s in range(56, 61)) / 5
    assert last < 0.6 * first, (first, last)
    assert summary.step == 60 and summary.stopped_by == "max_steps"
    assert summary.train["step"] == 60 and 0 < summary.train["acc"] <= 1
    row = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "examples_per_s", "elapsed", "acc", "epoch"} <= row.keys()
    assert (tmp_path / "metrics.png").stat().st_size > 1000
    config = json.loads((tmp_path / "trainer_config.json").read_text())
    assert config["batch_size"] == 8 and config["steps_per_epoch"] == 8


def test_no_weight_decay_on_biases_and_layernorm(tmp_path):
    trainer = h.make_trainer(tmp_path, weight_decay=0.05)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    m = trainer.model
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(groups["decay"]["params"]) == ids([m.embed.weight, m.dense.weight])  # decoder is tied to embed
    assert ids(groups["no_decay"]["params"]) == ids([m.norm.weight, m.norm.bias, m.dense.bias, m.decoder.bias])
    assert groups["decay"]["weight_decay"] == 0.05 and groups["no_decay"]["weight_decay"] == 0.0


def test_lr_warmup_then_linear_decay(tmp_path):
    h.make_trainer(tmp_path, lr=1e-3, warmup_steps=4, max_steps=10).fit()
    lr = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl")}
    expected = {1: 2.5e-4, 2: 5e-4, 4: 1e-3, 5: 1e-3, 7: 1e-3 * 4 / 6, 10: 1e-3 / 6}
    for step, value in expected.items():
        assert lr[step] == pytest.approx(value, rel=1e-12), step
    assert lr_factor(10, 4, 10, "linear") == 0.0
    assert lr_factor(2, 4, None, "constant") == 0.75 and lr_factor(50, 4, None, "constant") == 1.0


def test_warmup_ratio_resolves_against_total_steps(tmp_path):
    trainer = h.make_trainer(tmp_path, warmup_steps=0, warmup_ratio=0.25, epochs=2, max_steps=None)
    assert trainer.total_steps == 16 and trainer.warmup_steps == 4


class GradNorm(Callback):
    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer: Trainer) -> None:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def test_gradients_are_clipped(tmp_path):
    probe = GradNorm()
    h.make_trainer(tmp_path, max_grad_norm=0.05, max_steps=5, callbacks=(probe,)).fit()
    logged = [r["grad_norm"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert all(n > 0.05 for n in logged)  # the raw norm is larger than the limit...
    assert all(n <= 0.05 * (1 + 1e-5) for n in probe.norms)  # ...and the optimizer sees the clipped one


@pytest.mark.slow
def test_accumulation_equals_one_big_batch(tmp_path):
    # Equal when the micro-batch means weigh alike: same-length items, no dropout, no random collate.
    a, b = tmp_path / "a", tmp_path / "b"
    same = dict(dropout=0.0, max_steps=6, data=h.make_dataset(fixed_length=5), collate_fn=h.collate_clean)
    h.make_trainer(a, **same).fit()
    h.make_trainer(b, grad_accum=4, **same).fit()
    la, lb = losses(a), losses(b)
    assert la.keys() == lb.keys()
    for s in la:
        assert la[s] == pytest.approx(lb[s], abs=1e-6)
    assert_same_weights(saved_weights(a), saved_weights(b), atol=1e-6)


# ----------------------------------------------------------------------------- resume & checkpoints


class StopAt(Callback):
    """A run killed at the end of step ``step`` (after its checkpoints up to then)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, loss):
        if trainer.state.step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_metrics_mark_a_resume_and_partial_windows(tmp_path):
    """Issue 29: metrics.png showed a resume as an unexplained jump and the last, shorter window as any other
    point. A resumed run logs a "resume" row; a train row over fewer than log_every steps is "partial"."""
    cfg = dict(max_steps=13, log_every=5, save_every=6)
    with pytest.raises(KeyboardInterrupt):
        h.make_trainer(tmp_path, callbacks=(StopAt(7),), **cfg).fit()
    h.make_trainer(tmp_path, **cfg).fit(resume=True)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    # the checkpoint of step 6 holds the window's step 6: the row of step 10 averages 6..10, as without the stop
    assert [(r["split"], r["step"], r.get("partial", False)) for r in rows] == [
        ("train", 5, False), ("resume", 6, False), ("train", 10, False), ("train", 13, True)]
    assert (tmp_path / "metrics.png").stat().st_size > 1000
    h.make_trainer(tmp_path, **cfg).fit(resume=True)  # finished: nothing trained, no resume row
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 4


@pytest.mark.slow
def test_resume_after_sigkill_follows_the_same_curve(tmp_path):
    steps = 20
    a, b = tmp_path / "a", tmp_path / "b"
    h.make_trainer(a, max_steps=steps).fit()

    # the child prints once its step-8 checkpoint is written, then blocks until killed
    proc, blocked_at = h.start_blocking([str(b), "--max-steps", str(steps), "--save-every", "1", "--block-at", "8"])
    h.kill(proc)
    assert blocked_at == 8 and len(read_metrics(b / "metrics.jsonl")) >= 8
    ckpt = find_checkpoint(b)
    assert ckpt is not None
    resumed_from = torch.load(ckpt / "trainer_state.pt", weights_only=True)["state"]["step"]
    assert 7 <= resumed_from < steps

    trainer = h.make_trainer(b, max_steps=steps)
    summary = trainer.fit(resume=True)
    assert summary.step == steps
    la, lb = losses(a), losses(b)
    assert sorted(lb) == list(range(1, steps + 1))  # rows logged after the checkpoint were dropped, then redone
    assert [lb[s] for s in lb] == [la[s] for s in lb]  # bit-identical, before and after the resume point
    assert_same_weights(saved_weights(a), saved_weights(b))
    assert trainer.model.decoder.weight is trainer.model.embed.weight  # ties survive strict loading


TIMINGS = ("elapsed", "examples_per_s", "tokens_per_s")  # of the clock, not of the run


def curve(out_dir: Path) -> list[dict]:
    """The train and eval rows of a run without their timings: what a resumed run must write exactly."""
    return [{k: v for k, v in r.items() if k not in TIMINGS}
            for r in read_metrics(out_dir / "metrics.jsonl") if r["split"] in ("train", "eval")]


@pytest.mark.slow
@pytest.mark.parametrize("block_at", [6, 12, 15])
def test_a_kill_between_log_rows_resumes_on_the_same_rows(tmp_path, block_at):
    """Issue 32: the log window's sums were not in the checkpoint, so the first train row after a resume
    averaged only the steps after it. With log_every 4 and save_every 3 (neither divides the other) a run
    killed after its checkpoint of step 6 (mid-window), 12 (a log step) or 15 writes the same rows, "partial"
    flags included, and ends with the same weights as the run that never stopped."""
    steps, logs = 22, dict(max_steps=22, log_every=4, save_every=3, eval_every=5, keep_best="loss")
    evals = h.make_dataset(20, seed=9)  # what the helper's --eval-every uses
    a, b = tmp_path / "a", tmp_path / "b"
    h.make_trainer(a, eval_dataset=evals, **logs).fit()
    proc, blocked_at = h.start_blocking([str(b), "--max-steps", str(steps), "--save-every", "3", "--log-every", "4",
                                         "--eval-every", "5", "--block-at", str(block_at)])
    h.kill(proc)
    assert blocked_at == block_at
    h.make_trainer(b, eval_dataset=evals, **logs).fit(resume=True)
    assert [r["split"] for r in read_metrics(b / "metrics.jsonl")].count("resume") == 1
    assert curve(b) == curve(a)
    assert [r["step"] for r in curve(a) if r.get("partial")] == [22]
    assert_same_weights(saved_weights(a), saved_weights(b))


def test_a_checkpoint_without_a_log_window_still_resumes(tmp_path):
    """Checkpoints written before the window was saved load as before: the first row after them is partial."""
    cfg = dict(max_steps=8, log_every=4, save_every=3)
    with pytest.raises(KeyboardInterrupt):
        h.make_trainer(tmp_path, callbacks=(StopAt(7),), **cfg).fit()
    state_file = tmp_path / "checkpoint" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    assert state["log_window"]["steps"] == 2 and len(state["log_window"]["metrics"]) == 1
    del state["log_window"]
    torch.save(state, state_file)
    h.make_trainer(tmp_path, **cfg).fit(resume=True)
    rows = [(r["step"], r.get("partial", False)) for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert rows == [(4, False), (8, True)]  # steps 7 and 8 (with the window: 5 to 8, as the whole run)


def test_a_checkpoint_from_the_unfused_optimizer_resumes_fused(tmp_path):
    """AdamW is torch's fused kernel on the CPU now; a checkpoint saved by the per-parameter loop (its groups say
    fused None) resumes with this run's choice, the same state and step."""
    with pytest.raises(KeyboardInterrupt):
        h.make_trainer(tmp_path, callbacks=(StopAt(3),), max_steps=4, save_every=2).fit()
    state_file = tmp_path / "checkpoint" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    assert all(group["fused"] for group in state["optimizer"]["param_groups"])
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = None
    torch.save(state, state_file)
    resumed = h.make_trainer(tmp_path, max_steps=4, save_every=2)
    assert resumed.resume() == 2
    assert all(group["fused"] for group in resumed.optimizer.param_groups)
    assert torch.equal(resumed.optimizer.state_dict()["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])


def test_crash_before_swap_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = h.make_trainer(tmp_path, max_steps=5, save_every=1)
    real_swap, saves = runfiles.swap_dir_into_place, []

    def crash_on_third(tmp: Path, target: Path) -> None:
        saves.append(tmp)
        if len(saves) == 3:
            raise KeyboardInterrupt("simulated kill after writing the temp dir")
        real_swap(tmp, target)

    monkeypatch.setattr(runfiles, "swap_dir_into_place", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert saves[2].is_dir()  # the fully written but never swapped-in step-3 checkpoint
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint"
    assert h.make_trainer(tmp_path, max_steps=5).resume() == 2


def test_crash_between_renames_falls_back_to_old_and_resumes_exactly(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    h.make_trainer(ref, max_steps=5).fit()
    run = tmp_path / "run"
    real_replace, calls = os.replace, []

    def crash_moving_tmp_in(src, dst):
        if Path(src).name.startswith(".checkpoint.tmp"):
            calls.append(src)
            if len(calls) == 3:
                raise KeyboardInterrupt("simulated kill between the two renames")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_moving_tmp_in)
    with pytest.raises(KeyboardInterrupt):
        h.make_trainer(run, max_steps=5, save_every=1).fit()
    monkeypatch.setattr(os, "replace", real_replace)
    assert not (run / "checkpoint").exists() and (run / "checkpoint.old").is_dir()
    assert find_checkpoint(run) == run / "checkpoint.old"

    summary = h.make_trainer(run, max_steps=5).fit(resume=True)
    assert summary.step == 5
    assert losses(run) == losses(ref)
    assert_same_weights(saved_weights(run), saved_weights(ref))
    assert not (run / "checkpoint.old").exists() and not list(run.glob(".checkpoint.tmp-*"))


def test_trainer_state_loads_with_weights_only(tmp_path):
    h.make_trainer(tmp_path, max_steps=3).fit()
    state = torch.load(tmp_path / "checkpoint" / "trainer_state.pt", weights_only=True)
    assert state["state"]["step"] == 3 and state["state"]["epoch"] == 0 and state["state"]["batch_in_epoch"] == 3
    assert {"torch", "python", "numpy"} <= state["rng"].keys()
    assert state["config"]["batch_size"] == 8 and state["optimizer"]["state"]


@pytest.mark.slow
def test_fresh_run_refuses_to_clobber_and_resume_checks_config(tmp_path):
    h.make_trainer(tmp_path, max_steps=2).fit()
    with pytest.raises(FileExistsError, match="resume=True"):
        h.make_trainer(tmp_path, max_steps=2).fit()
    with pytest.raises(ValueError, match="batch_size=8"):
        h.make_trainer(tmp_path, max_steps=4, batch_size=4).fit(resume=True)
    h.make_trainer(tmp_path, max_steps=2, overwrite=True).fit()
    assert sorted(losses(tmp_path)) == [1, 2]


# ----------------------------------------------------------------------------- DDP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_ranks_equal_single_process_accumulation(tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    torchrun = Path(PY).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(
        [str(torchrun), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         str(HELPER), str(ddp), "--max-steps", "6", "--save-every", "3", "--eval-every", "3"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((ddp / "trainer_config.json").read_text())["world_size"] == 2

    h.make_trainer(single, max_steps=6, save_every=3, grad_accum=2, eval_every=3, keep_best="loss",
                   eval_dataset=h.make_dataset(20, seed=9)).fit()
    ld, ls = losses(ddp), losses(single)
    assert sorted(ld) == sorted(ls) == list(range(1, 7))
    for s in ld:
        assert ld[s] == pytest.approx(ls[s], abs=1e-6)
    # eval is sharded over the ranks (batch boundaries differ), so equal only up to the batch weighting
    ed, es = losses(ddp, "eval"), losses(single, "eval")
    assert sorted(ed) == sorted(es) == [3, 6]
    for s in ed:
        assert ed[s] == pytest.approx(es[s], rel=0.05)
    assert (ddp / "best" / "best.json").is_file()
    assert_same_weights(saved_weights(ddp), saved_weights(single), atol=1e-6)


# ----------------------------------------------------------------------------- stops, eval, errors


class NanAtCall(h.TinyTokenModel):
    def __init__(self, bad_call: int) -> None:
        super().__init__(dropout=0.0)
        self.calls, self.bad_call = 0, bad_call

    def forward(self, **batch):
        out = super().forward(**batch)
        self.calls += 1
        if self.calls == self.bad_call:
            out.loss = out.loss * float("nan")
        return out


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    model = NanAtCall(bad_call=3)
    trainer = h.make_trainer(tmp_path, model=model, max_steps=10, save_every=1)
    with pytest.raises(NonFiniteLossError, match=r"at step 3 \(last finite loss: \d") as err:
        trainer.fit()
    assert err.value.step == 3 and err.value.last_finite_loss == losses(tmp_path)[2]
    assert isinstance(err.value, GlassbertError) and isinstance(err.value, RuntimeError)  # the CLI: one line
    assert "precision='fp32' (--precision fp32)" in str(err.value) and "amp" not in str(err.value)
    assert sorted(losses(tmp_path)) == [1, 2]
    assert torch.load(tmp_path / "checkpoint" / "trainer_state.pt", weights_only=True)["state"]["step"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_a_run_dir_from_before_precision_resumes(tmp_path):
    """A run dir written before TrainConfig.precision (its checkpoint's config and trainer_config.json hold
    "amp") resumes and follows the losses and weights of a run that never stopped."""
    h.make_trainer(tmp_path / "full", max_steps=8, save_every=4).fit()
    old = tmp_path / "old"
    h.make_trainer(old, max_steps=4, save_every=4).fit()
    state_file = old / "checkpoint" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["config"]["precision"]
    state["config"]["amp"] = "no"
    torch.save(state, state_file)
    record = json.loads((old / "trainer_config.json").read_text())
    del record["precision"], record["precision_resolved"]
    (old / "trainer_config.json").write_text(json.dumps({**record, "amp": "no", "amp_enabled": False}))
    h.make_trainer(old, max_steps=8, save_every=4).fit(resume=True)
    assert losses(old) == losses(tmp_path / "full")
    assert all(torch.equal(v, saved_weights(tmp_path / "full")[k]) for k, v in saved_weights(old).items())
    assert json.loads((old / "trainer_config.json").read_text())["precision"] == "fp32"  # written anew (the helper trains in fp32)


def test_stop_by_minutes(tmp_path):
    clock = h.FakeClock(tick=0.05)  # every step "takes" 0.05 s, however fast the machine is
    trainer = h.make_trainer(tmp_path, max_steps=10_000, minutes=0.3 / 60, callbacks=(clock,))
    trainer.clock = clock
    summary = trainer.fit()
    assert summary.stopped_by == "minutes"
    assert 1 <= summary.step < 100 and summary.elapsed >= 0.3
    assert summary.step == 6 and summary.elapsed == pytest.approx(0.3)  # the first step at which 0.3 s are spent
    assert find_checkpoint(tmp_path) is not None


def test_setup_time_counts_in_the_minutes(tmp_path):
    """setup_seconds (pretrain's embedding init) is spent before the first step: 0.2 of 0.3 s leave 2 steps."""
    clock = h.FakeClock(tick=0.05)
    trainer = h.make_trainer(tmp_path, max_steps=10_000, minutes=0.3 / 60, setup_seconds=0.2, callbacks=(clock,))
    trainer.clock = clock
    summary = trainer.fit()
    assert summary.stopped_by == "minutes" and summary.step == 2 and summary.elapsed == pytest.approx(0.3)


def test_minutes_add_up_over_a_resume(tmp_path):
    clock = h.FakeClock(tick=0.05)
    first = h.make_trainer(tmp_path, max_steps=4, schedule="constant", warmup_steps=0, callbacks=(clock,))
    first.clock = clock
    assert first.fit().elapsed == pytest.approx(0.2)
    clock = h.FakeClock(tick=0.05)
    second = h.make_trainer(tmp_path, max_steps=None, minutes=0.5 / 60, schedule="constant", warmup_steps=0,
                            callbacks=(clock,))
    second.clock = clock
    summary = second.fit(resume=True)
    assert summary.stopped_by == "minutes" and summary.step == 10 and summary.elapsed == pytest.approx(0.5)


class LrLog(Callback):
    """The lr each optimizer step used, by step (1-based)."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.lrs: dict[int, float] = {}
        self.stop_at = stop_at

    def on_step_end(self, trainer, loss) -> None:
        self.lrs[trainer.state.step] = trainer.optimizer.param_groups[0]["lr"]
        if trainer.state.step == self.stop_at:
            raise KeyboardInterrupt  # a run killed here, after its checkpoint of step 10


def minutes_trainer(out, clock, log, **overrides):
    settings = dict(max_steps=None, minutes=0.5, warmup_steps=0, warmup_ratio=0.1, lr=1e-2, save_every=10)
    trainer = h.make_trainer(out, callbacks=(clock, log), **{**settings, **overrides})
    trainer.clock = clock
    return trainer


@pytest.mark.slow
def test_a_minutes_schedule_reaches_its_end_lr_at_the_deadline(tmp_path):
    """--minutes alone: warmup over the first 10 % of the 30 s, then linear decay by the fraction of the
    budget spent, 0 at the deadline (each step "takes" 1 s on the fake clock: step k is taken at k s)."""
    clock, log = h.FakeClock(tick=1.0), LrLog()
    summary = minutes_trainer(tmp_path, clock, log).fit()
    assert summary.stopped_by == "minutes" and summary.step == 30
    expected = {k: 1e-2 * (k / 3 if k < 3 else (1 - k / 30) / 0.9) for k in range(1, 31)}
    assert log.lrs == pytest.approx(expected, abs=1e-12)
    assert log.lrs[30] == 0.0 and max(log.lrs.values()) == pytest.approx(1e-2)


@pytest.mark.slow
def test_a_minutes_schedule_resumes_where_it_stopped(tmp_path):
    """The elapsed time is saved with the checkpoint: a run killed after step 12 (checkpoint at 10) and
    resumed under a clock that reads anything at all takes the same lrs and losses as one that never stopped."""
    whole = LrLog()
    minutes_trainer(tmp_path / "whole", h.FakeClock(tick=1.0), whole).fit()
    first = LrLog(stop_at=12)
    with pytest.raises(KeyboardInterrupt):
        minutes_trainer(tmp_path / "cut", h.FakeClock(tick=1.0), first).fit()
    clock, second = h.FakeClock(tick=1.0), LrLog()
    clock.now = 1000.0  # a new process: the clock's zero is not the run's
    summary = minutes_trainer(tmp_path / "cut", clock, second).fit(resume=True)
    assert summary.step == 30 and sorted(second.lrs) == list(range(11, 31))
    assert second.lrs == {k: whole.lrs[k] for k in range(11, 31)}
    assert losses(tmp_path / "whole") == losses(tmp_path / "cut")


def test_steps_and_minutes_end_the_schedule_at_the_first_limit(tmp_path):
    """max_steps 100 and 30 s of 1 s steps: the decay follows the time budget, the sooner end."""
    clock, log = h.FakeClock(tick=1.0), LrLog()
    trainer = minutes_trainer(tmp_path, clock, log, max_steps=100)
    summary = trainer.fit()
    assert summary.stopped_by == "minutes" and summary.step == 30 and log.lrs[30] == 0.0
    assert trainer.warmup_steps == 10 and log.lrs[5] == pytest.approx(1e-2 * 5 / 10)  # the slower warmup


def test_stop_by_epochs_with_a_progress_bar(tmp_path, capsys):
    summary = h.make_trainer(tmp_path, max_steps=None, epochs=2, progress=True).fit()
    assert summary.stopped_by == "epochs" and summary.step == 16 and summary.epoch == 2.0
    assert "16/16" in capsys.readouterr().err


@pytest.mark.slow
def test_data_loader_workers_give_the_same_run(tmp_path):
    h.make_trainer(tmp_path / "a", max_steps=10).fit()  # 10 steps cross an epoch boundary (8 per epoch)
    h.make_trainer(tmp_path / "b", max_steps=10, num_workers=2).fit()
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_eval_rows_keep_best_and_early_stop(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.1, 0.9])
    trainer = h.make_trainer(tmp_path, max_steps=100, eval_every=2, keep_best="score", early_stop_patience=2,
                             eval_fn=lambda model: {"score": next(scores)})
    summary = trainer.fit()
    assert summary.stopped_by == "early_stop" and summary.step == 8
    assert summary.best_value == 0.7 and summary.best_step == 4
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["score"] == 0.7 and best["step"] == 4
    assert (tmp_path / "best" / "model.safetensors").is_file()
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4, 6, 8]


def test_eval_fn_may_return_an_evaluation_and_the_best_weights_are_restored(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def eval_fn(model):
        step = trainer.state.step
        snapshots[step] = {k: v.clone() for k, v in model.state_dict().items()}
        return Evaluation({"score": next(scores)}, details=f"details of step {step}")

    trainer = h.make_trainer(tmp_path, max_steps=8, eval_every=2, keep_best="score", eval_fn=eval_fn)
    summary = trainer.fit()
    assert summary.best_step == 4 and summary.restored_best
    assert trainer.last_evaluation == Evaluation({"score": 0.65}, "details of step 8")
    assert trainer.best_evaluation == Evaluation({"score": 0.7}, "details of step 4")
    assert_same_weights(trainer.model.state_dict(), snapshots[4])
    assert not torch.equal(saved_weights(tmp_path)["dense.weight"], snapshots[4]["dense.weight"])  # checkpoint: last
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
    assert [r["score"] for r in evals] == [0.5, 0.7, 0.6, 0.65]


def test_restore_best_off_keeps_the_last_weights(tmp_path):
    scores = iter([0.7, 0.1])
    trainer = h.make_trainer(tmp_path, max_steps=4, eval_every=2, keep_best="score", restore_best=False,
                             eval_fn=lambda model: {"score": next(scores)})
    summary = trainer.fit()
    assert summary.best_step == 2 and not summary.restored_best
    last = saved_weights(tmp_path)  # the checkpoint holds the last step's weights (a tied weight once)
    assert_same_weights({k: v for k, v in trainer.model.state_dict().items() if k in last}, last)
    assert trainer.best_evaluation == Evaluation({"score": 0.7})


@pytest.mark.slow
def test_best_found_before_a_resume_is_restored_from_best_dir(tmp_path):
    scores = iter([0.9, 0.1, 0.2])
    first = h.make_trainer(tmp_path, max_steps=4, eval_every=2, keep_best="score",
                           eval_fn=lambda model: {"score": next(scores)})
    first.fit()
    best = dict(first.model.state_dict())  # restored at the end: the step-2 weights
    trainer = h.make_trainer(tmp_path, max_steps=6, eval_every=2, keep_best="score",
                             eval_fn=lambda model: {"score": next(scores)})
    summary = trainer.fit(resume=True)
    assert summary.best_step == 2 and summary.restored_best
    assert trainer.best_evaluation is not None and trainer.best_evaluation.metrics["score"] == 0.9
    assert_same_weights(trainer.model.state_dict(), best)


def test_eval_fn_must_return_metrics(tmp_path):
    trainer = h.make_trainer(tmp_path, max_steps=2, eval_every=2, eval_fn=lambda model: 0.5)
    with pytest.raises(TypeError, match="Mapping.*or an Evaluation"):
        trainer.fit()


def test_default_eval_is_mean_loss_and_metrics_over_eval_dataset(tmp_path):
    trainer = h.make_trainer(tmp_path, max_steps=4, eval_every=2, keep_best="loss",
                             eval_dataset=h.make_dataset(20, seed=9))
    summary = trainer.fit()
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4] and all({"loss", "acc"} <= r.keys() for r in evals)
    assert summary.eval == evals[-1] and summary.best_value == min(r["loss"] for r in evals)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(max_steps=None), "at least one stop condition"),
        (dict(schedule="cosine"), "schedule must be"),
        (dict(warmup_steps=2, warmup_ratio=0.1), "not both"),
        (dict(early_stop_patience=2), "needs keep_best"),
        (dict(precision="fp16"), "precision must be one of fp32, bf16, auto"),
        (dict(precision="no"), "precision must be one of fp32, bf16, auto"),
        (dict(batch_size=8, grad_accum=3), "divisible by world_size 1 × grad_accum 3"),
        (dict(batch_size=128), "fewer than one batch"),
        (dict(keep_best="loss"), "need an eval_dataset or an eval_fn"),
    ],
)
def test_bad_configuration_is_named(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        h.make_trainer(tmp_path, **overrides)


def test_model_without_scalar_loss_is_rejected(tmp_path):
    class NoLoss(h.TinyTokenModel):
        def forward(self, **batch):
            return super().forward(batch["input_ids"], batch["attention_mask"])

    with pytest.raises(TypeError, match="scalar tensor"):
        h.make_trainer(tmp_path, model=NoLoss()).fit()


def test_pretrains_a_tiny_bert(tmp_path):
    from glassbert import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    config = BertConfig.preset("toy")
    model = BertForPreTraining(config)
    V, T = config.vocab_size, 10

    def collate(items, generator):
        ids = torch.stack(items)
        mask_positions = torch.rand(ids.shape, generator=generator) < 0.3
        mask_positions[:, 1] = True  # at least one masked token per row
        labels = torch.where(mask_positions, ids, torch.full_like(ids, -100))
        masked = torch.where(mask_positions, torch.full_like(ids, 3), ids)
        nsp = torch.randint(0, 2, (len(items),), generator=generator)
        return {"input_ids": masked, "attention_mask": torch.ones_like(ids), "labels": labels,
                "next_sentence_label": nsp}

    data = list(torch.randint(5, V, (32, T), generator=torch.Generator().manual_seed(1)))
    cfg = TrainConfig(tmp_path, batch_size=8, lr=5e-3, max_steps=12, log_every=1, save_every=6, progress=False)
    summary = Trainer(model, data, collate, cfg).fit()
    assert summary.step == 12 and all(torch.isfinite(torch.tensor(list(losses(tmp_path).values()))))
    fresh = BertForPreTraining(config)
    Trainer(fresh, data, collate, TrainConfig(tmp_path, batch_size=8, max_steps=12, progress=False)).resume()
    for (name, p), q in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(p, q), name


def test_throughput_counts_training_time_only(tmp_path):
    """examples_per_s is over the time the steps took: an evaluation, a checkpoint or a recording between two
    steps is not charged to it (the curves dipped at every epoch's evaluation)."""
    clock = h.FakeClock(tick=0.5)  # every step "takes" 0.5 s

    class SlowCallback:
        def on_step_end(self, trainer, loss):
            clock.now += 100.0  # a recording that takes long

    def slow_eval(model):
        clock.now += 1000.0
        return Evaluation({"score": 0.0}, None)

    trainer = h.make_trainer(tmp_path, max_steps=6, log_every=2, eval_every=3, eval_fn=slow_eval,
                             callbacks=(clock, SlowCallback()))
    trainer.clock = clock
    trainer.fit()
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("split") == "train"]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert [r["examples_per_s"] for r in rows] == pytest.approx([8 / 0.5] * 3)  # batch 8, 0.5 s a step


def test_dropout_keeps_one_minus_p_and_scales_by_its_inverse():
    """glassbert.model.dropout (the cheaper mask every Dropout module and the attention use in training): it keeps
    58,982 of 65,536 at p = 0.1, scales the kept ones by the inverse of exactly that, is the identity in eval."""
    from glassbert.model import Dropout, dropout
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = dropout(x, 0.1)
    kept = y != 0
    assert abs(kept.float().mean().item() - 58982 / 65536) < 2e-3
    assert torch.all(y[kept] == 65536 / 58982) and abs(y.mean().item() - 1) < 3e-3
    lanes = kept.reshape(-1, 4).float().mean(0)  # each of the four 16-bit lanes of a 64-bit draw is uniform
    assert torch.all((lanes - 58982 / 65536).abs() < 4e-3), lanes
    z = dropout(torch.full((4000,), 3.0, dtype=torch.bfloat16), 0.1)  # bf16: the scale applied as a float
    assert torch.all(z[z != 0] == torch.tensor(3 * 65536 / 58982).to(torch.bfloat16))
    for dtype in (torch.float32, torch.bfloat16):  # the gradient: the same mask, the same scale, in x's dtype
        w = torch.randn(300, 40, dtype=dtype, requires_grad=True)
        out = dropout(w, 0.1)
        grad = torch.randn_like(out)
        out.backward(grad)
        mask = (out != 0).to(dtype)
        assert w.grad.dtype == dtype and torch.equal(w.grad, (grad.float() * mask.float() * (65536 / 58982)).to(dtype))
        assert torch.equal(out, (w.detach().float() * mask.float() * (65536 / 58982)).to(dtype))
    assert torch.equal(dropout(x, 0.0), x) and dropout(torch.ones(3, 5, 7), 0.5).shape == (3, 5, 7)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))  # as nn.Dropout(1.0): no division by zero
    module = Dropout(0.5)
    assert not torch.equal(module(x), x)
    module.eval()
    assert module(x) is x


def test_training_attention_on_the_cpu_is_the_formula_in_each_dtype():
    """BertSelfAttention.products (training on a CPU: matrix products in Q's dtype, the cheaper dropout) computes
    dropout(softmax(QKᵀ/√d + mask))·V: with the same random draws it equals that formula spelled out in fp32,
    and in bf16 it stays within bf16's rounding of the fp32 result."""
    import math
    from glassbert.config import BertConfig
    from glassbert.model import BertSelfAttention, dropout
    torch.manual_seed(0)
    attention = BertSelfAttention(BertConfig.preset("tiny", attention_probs_dropout_prob=0.1)).train()
    d = attention.head_size
    q, k, v = (torch.randn(2, attention.num_heads, 6, d) for _ in range(3))
    mask = torch.zeros(2, 1, 1, 6)
    mask[1, ..., 4:] = torch.finfo(torch.float32).min                     # row 1: two [PAD] keys
    torch.manual_seed(1)
    got = attention.products(q, k, v, mask)
    torch.manual_seed(1)
    want = dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1), 0.1) @ v
    assert torch.allclose(got, want, atol=1e-6)
    attention.dropout.p = 0.0
    exact = attention.products(q, k, v, mask)
    low = attention.products(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask)
    assert low.dtype == torch.bfloat16 and (low.float() - exact).abs().max() < 0.05 * exact.abs().max()


def test_bf16_training_of_packed_rows_with_padding_keeps_gradients_finite():
    """Under bf16 autocast, packed rows ((B, T, T) masks: a [PAD] token's query sees no key at all) give finite
    gradients: the additive mask is the bf16 minimum there, not fp32's, which bf16 rounds to −inf: softmax of a
    row of −inf is NaN, and the keys' gradient sums over every query row of the text, the [PAD] one's too."""
    from glassbert.config import BertConfig
    from glassbert.heads import BertForMaskedLM
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig.preset("tiny", vocab_size=50, max_position_embeddings=16)).train()
    ids = torch.randint(5, 50, (2, 7))
    mask = torch.zeros(2, 7, 7, dtype=torch.long)
    mask[0, :4, :4] = mask[0, 4:6, 4:6] = 1                               # two documents, then one [PAD]
    mask[1] = 1
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 0], list(range(7))])
    labels = torch.full((2, 7), -100)
    labels[:, 2] = 7
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(torch.isfinite(p.grad).all() for p in model.parameters()
                                            if p.grad is not None)
