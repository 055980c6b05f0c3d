"""The recorder: what a snapshot holds, when it is taken, the size bound, the manifest round trip.

Everything here runs the real glassbert model under the real Capture; `toy_run` (the six sentence
pairs of "Exploring BERT" on the "toy" preset) is also the demo run of the explorer tests.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from glassbert.capture import Capture
from glassbert.config import BertConfig
from glassbert.heads import BertForMaskedLM
from glassbert.model import BertModel
from glassbert.errors import ExistsError, InputError
from glassbert.recording import (MANIFEST_VERSION, Recorder, RecordSpec, RecordStore, load_manifest, load_tensor,
                                 parse_record_spec, read_metrics, record_once)
from helpers_record import toy_batch, toy_model, toy_run, toy_tokenizer



# ------------------------------------------------------------------------------- the spec
def test_parse_record_spec():
    s = parse_record_spec("samples=0,1;epochs=0,10,100,1000,last")
    assert s.samples == (0, 1) and s.epochs == (0, 10, 100, 1000) and s.last and s.planned() == 5
    s = parse_record_spec("steps=50,0; every=3")
    assert s.steps == (0, 50) and s.every == 3 and s.planned() is None
    assert parse_record_spec("every_steps=10").every_steps == 10
    assert parse_record_spec("").unconditional
    assert RecordSpec.parse(str(parse_record_spec("samples=2;epochs=1,last;steps=4;every=2"))) == \
        parse_record_spec("samples=2;epochs=1,last;steps=4;every=2")
    for bad in ("epochs=-1", "samples=a", "every=0", "colour=red", "epochs", "epochs=1;epochs=2", "steps=last"):
        with pytest.raises(ValueError):
            parse_record_spec(bad)


def test_wants_follows_the_spec():
    tok = toy_tokenizer()
    rec = Recorder("/nonexistent-not-written", toy_batch(tok), tok, "epochs=0,2;every_steps=7")
    calls = [(e, s) for e in range(4) for s in range(e * 5, e * 5 + 5)]  # 5 steps per epoch
    taken = []
    for e, s in calls:
        if rec.wants(e, s):
            rec._seen_epochs.add(e)
            rec._seen_steps.add(s)
            taken.append((e, s))
    assert taken == [(0, 0), (1, 7), (2, 10), (2, 14)]
    assert not Recorder("/x", toy_batch(tok), tok, "epochs=0").wants(5, 5, last=True)
    assert Recorder("/x", toy_batch(tok), tok, "epochs=0,last").wants(5, 5, last=True)


@pytest.mark.parametrize("spec", ["every_steps=7", "epochs=0,2;every_steps=7", "every=2", "", "steps=0,3,50;epochs=last",
                                  "every=1;every_steps=5", "epochs=1,9,last"])
def test_the_planned_count_of_a_run_of_known_length_is_what_it_takes(spec):
    """What RecordCallback plans for (a run's length known) is the number of snapshots the spec then takes,
    offered as the Trainer offers them: before the first step, after each, and at the end."""
    tok = toy_tokenizer()
    for total, per_epoch in ((20, 5), (23, 5), (7, 10)):
        rec = Recorder("/nonexistent-not-written", toy_batch(tok), tok, spec)
        taken = 0
        for step in range(total + 1):
            for last in ((False, True) if step == total else (False,)):
                if rec.wants(step // per_epoch, step, last=last):
                    rec._seen_epochs.add(step // per_epoch)
                    rec._seen_steps.add(step)
                    taken += 1
        assert rec.spec.planned_for(total, per_epoch) == taken, (spec, total, per_epoch)


def test_a_run_of_known_length_plans_its_snapshots_not_twenty(tmp_path):
    """An open-ended spec (every_steps=…) over a run of known length plans for that run's snapshots, so a
    short run keeps what a plan for 20 would have dropped."""
    from types import SimpleNamespace
    from glassbert.recording import RecordCallback
    tok = toy_tokenizer()
    rec = Recorder(tmp_path / "r", toy_batch(tok), tok, "every_steps=10")
    trainer = SimpleNamespace(total_steps=30, steps_per_epoch=6, is_main=True, model=toy_model(tok),
                              state=SimpleNamespace(epoch=0, step=0))
    RecordCallback(rec).on_train_begin(trainer)
    assert rec.expected_snapshots == 4 and rec._plan.expected == 4
    fixed = Recorder(tmp_path / "f", toy_batch(tok), tok, "epochs=0,1", expected_snapshots=None)
    RecordCallback(fixed).on_train_begin(trainer)
    assert fixed.expected_snapshots is None and fixed._plan.expected == 2  # a finite list plans itself
    open_ended = Recorder(tmp_path / "o", toy_batch(tok), tok, "every_steps=10")
    RecordCallback(open_ended).on_train_begin(SimpleNamespace(**{**vars(trainer), "total_steps": None}))
    assert open_ended._plan.expected == 20  # --minutes only: the length is not known


# ------------------------------------------------------------------------------- contents
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    run = tmp_path_factory.mktemp("toyrun")
    model, rec = toy_run(run, epochs=12, spec="samples=0,2,5;epochs=0,5,last")
    return run, model, rec


def test_snapshots_at_the_asked_epochs(recorded):
    run, _, _ = recorded
    m = load_manifest(run)
    assert [s["epoch"] for s in m["snapshots"]] == [0, 5, 12]
    assert [s["index"] for s in m["samples"]] == [0, 2, 5]
    for s in m["snapshots"]:
        assert (run / "record" / s["file"]).is_file()
        assert s["bytes"] == (run / "record" / s["file"]).stat().st_size


def test_every_capture_point_and_weight_is_recorded(recorded):
    run, model, rec = recorded
    m = load_manifest(run)
    tok = toy_tokenizer()
    batch = toy_batch(tok)
    with torch.no_grad(), Capture(model) as cap:
        model.eval()
        model(**batch)
    names = set(m["tensors"])
    assert set(cap.records) <= names
    assert {"cls.predictions.softmax", "cls.predictions.argmax", "cls.seq_relationship.softmax"} <= names
    assert {n for n, _ in model.named_parameters()} <= names
    cfg = model.config
    T = batch["input_ids"].shape[1]
    t = m["tensors"]
    assert t["bert.encoder.layer.1.attention.self.query"]["shape"] == [cfg.num_attention_heads, T, 4]
    assert t["bert.encoder.layer.1.attention.self.query"]["dims"] == ["head", "token", "head_dim"]
    assert t["bert.encoder.layer.0.attention.self.probs"]["shape"] == [5, T, T]
    assert t["bert.embeddings.sum"]["shape"] == [T, 7]
    assert t["cls.predictions.logits"]["shape"] == [2, tok.vocab_size]
    assert t["cls.seq_relationship.logits"]["shape"] == [2]
    assert t["bert.encoder.layer.0.intermediate.dense"]["shape"] == [T, 28]
    assert t["bert.embeddings.word_embeddings.weight"]["kind"] == "weight"
    assert m["vocab"] == tok.convert_ids_to_tokens(list(range(tok.vocab_size)))
    assert m["samples"][0]["masked_tokens"] == ["cat", "chase"]
    assert m["samples"][0]["text"] == "the cat chased the mouse. it was a fast chase."
    assert m["samples"][1]["is_next"] is True and m["samples"][2]["is_next"] is False


def test_values_equal_an_eval_forward_of_the_final_model(recorded):
    run, model, _ = recorded
    tok = toy_tokenizer()
    batch = toy_batch(tok)
    rows = [0, 2, 5]
    batch = {k: v[rows] for k, v in batch.items()}  # the recorder's forward ran on these rows only
    model.eval()
    with torch.no_grad(), Capture(model) as cap:
        model(**batch)
    with torch.no_grad():  # the MLM head on every token, to check the per-sample split of masked rows
        plain = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).prediction_logits
    last = len(load_manifest(run)["snapshots"]) - 1
    for j, row in enumerate(rows):
        for name in ("bert.embeddings.sum", "bert.encoder.layer.1.attention.self.probs",
                     "bert.encoder.layer.0.attention.self.context", "bert.pooler.activation",
                     "cls.seq_relationship.logits", "bert.encoder.layer.1.output.layernorm"):
            got = load_tensor(run, last, name, sample=j)
            torch.testing.assert_close(got, cap.records[name][j], rtol=0, atol=0)
        positions = (batch["labels"][j] != -100).nonzero().flatten()
        assert load_manifest(run)["samples"][j]["masked_positions"] == positions.tolist()
        logits = load_tensor(run, last, "cls.predictions.logits", sample=j)
        torch.testing.assert_close(logits, plain[j, positions], rtol=1e-5, atol=1e-5)
        argmax = load_tensor(run, last, "cls.predictions.argmax", sample=j)
        pred = load_manifest(run)["snapshots"][last]["predictions"][j]
        assert argmax.tolist() == pred["masked_pred_ids"] == plain[j, positions].argmax(-1).tolist()
        assert pred["masked_true_ids"] == batch["labels"][j, positions].tolist()
    for pname, p in model.named_parameters():
        torch.testing.assert_close(load_tensor(run, last, pname), p.detach(), rtol=0, atol=0)


def test_snapshots_change_through_training(recorded):
    run, _, _ = recorded
    first = load_tensor(run, 0, "bert.encoder.layer.0.attention.self.query.weight")
    last = load_tensor(run, 2, "bert.encoder.layer.0.attention.self.query.weight")
    assert (first - last).abs().max() > 1e-3


def test_aliases_are_bit_identical_views(recorded):
    run, _, _ = recorded
    m = load_manifest(run)
    aliases = m["snapshots"][0]["aliases"]
    assert aliases.get("bert.embeddings.dropout") == "bert.embeddings.layernorm"  # dropout is off in eval
    for name, target in aliases.items():
        torch.testing.assert_close(load_tensor(run, 0, name, 0), load_tensor(run, 0, target, 0), rtol=0, atol=0)


@pytest.mark.slow
def test_recording_leaves_rng_and_mode_alone(tmp_path):
    tok = toy_tokenizer()
    batch = toy_batch(tok)

    def train(record: bool) -> list[torch.Tensor]:
        model = toy_model(tok, seed=1, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
        rec = Recorder(tmp_path / f"r{int(record)}", batch, tok, "every=1")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(7)
        for epoch in range(4):
            model.train()
            if record:
                state = torch.get_rng_state()
                assert rec.maybe_record(epoch, epoch, model)
                assert torch.equal(state, torch.get_rng_state())
                assert model.training
            opt.zero_grad()
            model(**batch).loss.backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(train(False), train(True)):
        assert torch.equal(a, b)
    model = toy_model(tok).eval()
    Recorder(tmp_path / "eval", batch, tok).record(model)
    assert not model.training


# ------------------------------------------------------------------------------- size bound
def _record_dir_bytes(run: Path) -> int:
    return sum(p.stat().st_size for p in (run / "record").iterdir())


@pytest.mark.slow
def test_size_bound_drops_weights_first_and_is_never_exceeded(tmp_path):
    tok = toy_tokenizer()
    batch = toy_batch(tok)
    model = toy_model(tok)
    full = Recorder(tmp_path / "full", batch, tok, "epochs=0")
    full.record(model)
    per_snapshot = load_manifest(tmp_path / "full")["snapshots"][0]["bytes"]
    weights = [n for n, t in load_manifest(tmp_path / "full")["tensors"].items() if t["kind"] == "weight"]
    assert load_manifest(tmp_path / "full")["dropped"] == []

    assert full.say is not None
    bound = int(4 * per_snapshot * 0.8 + 256_000)  # 4 planned snapshots, 80 % of the room they need
    said: list[str] = []
    rec = Recorder(tmp_path / "tight", batch, tok, "epochs=0,1,2,3", max_bytes=bound, say=said.append)
    for e in range(4):
        assert rec.maybe_record(e, e, model)
    # issue 29: the terminal says what the bound left out and how to keep it, once
    assert len(said) == 1 and "\n" not in said[0], said
    assert said[0].startswith("--record: to fit 4 snapshots in its") and "W tok" in said[0]
    assert "record at most 3 snapshots" in said[0]
    m = load_manifest(tmp_path / "tight")
    assert m["dropped"], "the bound must have forced drops"
    order = rec._plan.dropped
    assert order[0] == "bert.embeddings.word_embeddings.weight"  # the vocabulary matrix goes first
    first_activation = next((i for i, n in enumerate(order) if n not in weights), len(order))
    assert all(n in weights for n in order[:first_activation])
    assert "bert.encoder.layer.0.attention.self.probs" not in m["dropped"]
    assert len(m["snapshots"]) == 4
    assert _record_dir_bytes(tmp_path / "tight") <= bound
    assert m["snapshot_bytes"] == sum(s["bytes"] for s in m["snapshots"])
    assert m["snapshot_bytes"] + (tmp_path / "tight" / "record" / "manifest.json").stat().st_size \
        == _record_dir_bytes(tmp_path / "tight")
    assert "bert.embeddings.word_embeddings.weight" not in m["tensors"]
    with pytest.raises(KeyError):
        load_tensor(tmp_path / "tight", 0, "bert.embeddings.word_embeddings.weight")


@pytest.mark.slow
def test_size_bound_thins_snapshots_when_the_run_is_longer_than_planned(tmp_path):
    tok = toy_tokenizer()
    batch = toy_batch(tok)
    model = toy_model(tok)
    probe = Recorder(tmp_path / "probe", batch, tok, "epochs=0", include=["*probs", "*layernorm"], weights=False)
    probe.record(model)
    size = load_manifest(tmp_path / "probe")["snapshots"][0]["bytes"]
    bound = 5 * size + 20_000
    rec = Recorder(tmp_path / "thin", batch, tok, "every=1", include=["*probs", "*layernorm"], weights=False,
                   max_bytes=bound, expected_snapshots=4)
    taken = [e for e in range(40) if rec.maybe_record(e, e, model, last=e == 39)]
    m = load_manifest(tmp_path / "thin")
    assert _record_dir_bytes(tmp_path / "thin") <= bound
    epochs = [s["epoch"] for s in m["snapshots"]]
    assert epochs[0] == 0 and epochs[-1] == 39 and 2 <= len(epochs) <= 5
    assert m["thinned"] and len(taken) < 40
    assert epochs == sorted(epochs)


def test_bound_too_small_for_one_snapshot_is_an_error(tmp_path):
    tok = toy_tokenizer()
    rec = Recorder(tmp_path / "tiny", toy_batch(tok), tok, max_bytes=10_000)
    with pytest.raises(ValueError, match="too small"):
        rec.record(toy_model(tok))


# ------------------------------------------------------------------------------- manifest
def test_manifest_round_trip_and_resume(tmp_path):
    tok = toy_tokenizer()
    batch = toy_batch(tok)
    model = toy_model(tok)
    rec = Recorder(tmp_path, batch, tok, "epochs=0,1,2")
    rec.maybe_record(0, 0, model)
    on_disk = json.loads((tmp_path / "record" / "manifest.json").read_text())
    assert on_disk == load_manifest(tmp_path) == load_manifest(tmp_path / "record")
    assert json.loads(json.dumps(rec.manifest)) == on_disk
    assert on_disk["version"] == MANIFEST_VERSION and on_disk["config"]["hidden_size"] == 7
    assert BertConfig.from_dict(on_disk["config"]) == model.config
    # a resumed run appends and does not re-record epoch 0
    again = Recorder(tmp_path, batch, tok, "epochs=0,1,2", resume=True)
    assert not again.maybe_record(0, 0, model)
    assert again.maybe_record(1, 1, model)
    m = load_manifest(tmp_path)
    assert [s["epoch"] for s in m["snapshots"]] == [0, 1]
    assert len({s["file"] for s in m["snapshots"]}) == 2
    with pytest.raises(FileNotFoundError):
        load_manifest(tmp_path / "nothing-here")


def test_record_once_any_checkpoint_with_pairs_and_masks(tmp_path):
    tok = toy_tokenizer()
    torch.manual_seed(3)
    cfg = BertConfig.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=16)
    mlm = BertForMaskedLM(cfg).eval()
    texts = [("The [MASK] chased the mouse.", "It was a fast chase."), ("I love cats.", "Please visit the [MASK].")]
    run = record_once(mlm, tok, texts, tmp_path / "mlm")
    m = load_manifest(run)
    assert [s["masked_positions"] for s in m["samples"]] == [[2], [9]]
    enc = tok([a for a, _ in texts], text_pair=[b for _, b in texts], padding=True)
    with torch.no_grad():
        logits = mlm(**enc).prediction_logits
    torch.testing.assert_close(load_tensor(run, 0, "cls.predictions.logits", 1)[0], logits[1, 9])
    assert m["samples"][0]["text"].startswith("The [MASK] chased")

    bare = BertModel(cfg)
    run2 = record_once(bare, tok, ["I love cats.", "The sun is hot."], tmp_path / "bare")
    m2 = load_manifest(run2)
    assert m2["prefix"] == "" and "encoder.layer.1.attention.self.probs" in m2["tensors"]
    assert "embeddings.word_embeddings.weight" in m2["tensors"]
    assert not any(n.startswith("cls.") for n in m2["tensors"])


def test_manifest_describes_tensors_from_the_capture_tables(recorded):
    run, model, _ = recorded
    m = load_manifest(run)
    key = m["tensors"]["bert.encoder.layer.1.attention.self.key"]
    assert (key["dims"], key["label"]) == (["head", "token", "head_dim"], "K per head")
    assert m["tensors"]["bert.encoder.layer.0.attention.self.probs"]["dims"] == ["head", "token", "token"]
    assert m["tensors"]["cls.predictions.argmax"]["dims"] == ["masked"]  # derived by the recorder
    cat = {e["name"]: e for e in m["catalogue"]}
    assert cat["bert.encoder.layer.1.attention.self.probs"]["role"] == "attention"
    assert cat["bert.encoder.layer.1.attention.self.probs"]["layer"] == 1
    # the tied decoder's weight is the word embedding table, under the name it is stored as
    assert cat["cls.predictions.logits"]["weight"] == "bert.embeddings.word_embeddings.weight"
    assert set(m["tensors"]) - {n for n, t in m["tensors"].items() if t["kind"] == "weight"} <= set(cat)


def test_a_record_of_the_previous_version_still_opens(tmp_path):
    """tests/data/v1-run was recorded by glassbert before the catalogue (manifest version 1)."""
    import shutil
    run = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "data" / "v1-run", run)
    before = (run / "record" / "manifest.json").read_bytes()
    m = load_manifest(run)
    assert m["version"] == 1 and m["catalogue"]  # rebuilt in memory from the model class and config
    names = {e["name"] for e in m["catalogue"]}
    assert "bert.encoder.layer.1.attention.self.probs" in names and "cls.seq_relationship.softmax" in names
    assert load_tensor(run, 1, "bert.encoder.layer.0.attention.self.probs", 0).shape == (5, 14, 14)
    assert (run / "record" / "manifest.json").read_bytes() == before  # read-only


# ------------------------------------------------------------------------------- damaged files say which
def _copy_of(recorded, tmp_path) -> Path:
    run, _, _ = recorded
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize("text, fragment", [
    ('{"version": 2,\n  "snapshots": [1,,]}', "manifest.json line 2 column 19: invalid JSON"),
    ("", "manifest.json line 1 column 1: invalid JSON"),
    ('{"version": 2, "tensors": {}, "samples": []}', "manifest.json: key 'snapshots' is missing"),
    ('{"version": 2, "snapshots": {}, "tensors": {}, "samples": []}', "key 'snapshots' is a dict, not a JSON list"),
])
def test_a_damaged_manifest_names_the_file_and_where(recorded, tmp_path, text, fragment):
    copy = _copy_of(recorded, tmp_path)
    (copy / "record" / "manifest.json").write_text(text)
    with pytest.raises(InputError) as e:
        load_manifest(copy)
    assert fragment in str(e.value) and str(copy / "record" / "manifest.json") in str(e.value)
    assert "re-record" in str(e.value)


def test_a_manifest_that_is_not_utf8_names_the_byte(recorded, tmp_path):
    copy = _copy_of(recorded, tmp_path)
    (copy / "record" / "manifest.json").write_bytes(b'{"version": 2, "x": "\xff"}')
    with pytest.raises(InputError, match=r"manifest\.json line 1: byte 0xff at column 22 is not UTF-8"):
        load_manifest(copy)


def test_metrics_skip_a_torn_last_line_but_name_a_file_that_is_not_text(recorded, tmp_path):
    copy = _copy_of(recorded, tmp_path)
    metrics = copy / "metrics.jsonl"
    rows = read_metrics(copy)
    with open(metrics, "a") as f:
        f.write('{"step": 99, "mlm_lo')  # a kill mid-append
    assert read_metrics(copy) == rows
    metrics.write_bytes(metrics.read_bytes() + b"\n\xff\xfe\n")
    with pytest.raises(InputError, match=rf"metrics\.jsonl line {len(rows) + 2}: byte 0xff at column 1 is not UTF-8"):
        read_metrics(copy)


def test_a_cut_snapshot_file_names_the_file(recorded, tmp_path):
    """Reading a tensor (the server) and reading whole snapshots (the export) both say which file is damaged."""
    copy = _copy_of(recorded, tmp_path)
    entry = load_manifest(copy)["snapshots"][0]
    snap = copy / "record" / entry["file"]
    whole = snap.read_bytes()
    store = RecordStore(copy)
    for cut in (whole[:4], whole[:100], whole[:len(whole) // 2]):
        snap.write_bytes(cut)
        with pytest.raises(InputError, match=re.escape(entry["file"]) + ": not a (complete|readable) safetensors"):
            store.snapshot_raw(entry)
        with pytest.raises(InputError, match=re.escape(entry["file"])):
            store.tensor(0, "bert.encoder.layer.0.attention.self.probs", 0)


# ------------------------------------------------------------------------------- record_model targets
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from glassbert.modeldir import save_pretrained

    tok = toy_tokenizer()
    return save_pretrained(toy_model(tok), tmp_path_factory.mktemp("model") / "toy", tokenizer=tok)


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_record_model_refuses_a_directory_that_holds_files(model_dir, tmp_path):
    from glassbert.recording import record_model

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(ExistsError, match="already holds files: pass --overwrite"):
        record_model(model_dir, ["the cat chased the mouse ."], out)
    assert _files(out) == {"notes.txt": b"my notes"}
    with pytest.raises(InputError, match="holds the model"):
        record_model(model_dir, ["the cat ."], model_dir, overwrite=True)
    assert (model_dir / "model.safetensors").is_file()
    fresh = record_model(model_dir, ["the cat chased the mouse ."], tmp_path / "new" / "rec")
    assert len(load_manifest(fresh)["snapshots"]) == 1


def test_record_model_overwrite_replaces_a_recording_whole(model_dir, recorded, tmp_path):
    from glassbert.recording import record_model

    out = _copy_of(recorded, tmp_path)  # a run: three snapshots, metrics
    record_model(model_dir, ["the sun is hot ."], out, overwrite=True)
    m = load_manifest(out)
    assert [s["file"] for s in m["snapshots"]] == ["snap-000000.safetensors"]
    assert sorted(p.name for p in (out / "record").iterdir()) == ["manifest.json", "snap-000000.safetensors"]
    assert not (out / "metrics.jsonl").exists(), "nothing of the old run is left beside the new recording"
    assert m["samples"][0]["text"] == "the sun is hot ."
    assert [p.name for p in tmp_path.iterdir()] == ["run"], "no temp directory is left behind"


def test_record_model_overwrite_that_fails_keeps_the_old_recording(model_dir, recorded, tmp_path, monkeypatch):
    from glassbert.recording import oneshot

    out = _copy_of(recorded, tmp_path)
    before = _files(out)

    def fails(*args, **kwargs):
        raise InputError("the recording does not fit")
    monkeypatch.setattr(oneshot, "record_once", fails)
    with pytest.raises(InputError, match="does not fit"):
        oneshot.record_model(model_dir, ["the sun is hot ."], out, overwrite=True)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_renamed_run_shows_its_new_name(recorded, tmp_path):
    copy = _copy_of(recorded, tmp_path)
    moved = copy.rename(tmp_path / "renamed")
    assert RecordStore(moved).manifest()["run_name"] == "renamed"


# ------------------------------------------------------------------------------- attributions
def test_parse_the_explain_key():
    assert parse_record_spec("").explain == "all"
    assert parse_record_spec("epochs=0;explain=ig").explain == "ig"
    assert str(parse_record_spec("epochs=0;explain=none")) == "epochs=0;explain=none"
    assert str(parse_record_spec("epochs=0;explain=all")) == "epochs=0"
    with pytest.raises(InputError, match="explain= takes all, ig, none, got 'shap'"):
        parse_record_spec("explain=shap")


def test_each_snapshot_holds_each_samples_attributions(recorded):
    """The true word at the first [MASK] and the true NSP label, by IG (per token) and conductance (layers ×
    tokens), from the model as it was at that snapshot: each sums to p(target) − p(baseline) within delta."""
    run, model, _ = recorded
    m = load_manifest(run)
    assert m["attribution"]["methods"] == ["ig", "conductance"]
    for snap in m["snapshots"]:
        assert len(snap["attributions"]) == len(m["samples"])
        for info, entries in zip(m["samples"], snap["attributions"]):
            word, nsp = entries
            first = info["masked_positions"][0]
            assert word["target"] == f"word {info['masked_tokens'][0]!r} at [MASK] position {first}"
            assert (word["kind"], word["position"], word["gold"]) == ("word", first, True)
            assert nsp["target"] == f"NSP {'IsNext' if info['is_next'] else 'NotNext'!r}" and nsp["gold"]
            for e in entries:
                n = info["length"]
                assert len(e["ig"]) == n and [len(row) for row in e["layers"]] == [n, n]
                difference = e["probability"] - e["baseline_probability"]
                slack = 1e-3 + 1e-3 * abs(difference)  # the stored numbers are rounded to 4 digits
                assert abs(sum(e["ig"]) - difference) <= abs(e["ig_delta"]) + slack
                for row in e["layers"]:
                    assert abs(sum(row) - difference) <= abs(e["layers_delta"]) + slack
    last = m["snapshots"][-1]["attributions"]
    first = m["snapshots"][0]["attributions"]
    assert last != first  # training moved them


def test_the_last_snapshots_attributions_are_the_final_models(recorded):
    """Recorded from the padded batch of all samples; the same as one sample explained alone."""
    from glassbert.explain import Explainer
    from glassbert.recording.attribution import RECORD_STEPS

    run, model, rec = recorded
    m = load_manifest(run)
    info = m["samples"][1]
    entry = m["snapshots"][-1]["attributions"][1][0]
    again = Explainer(model, rec.tokenizer).explain_ids(
        info["input_ids"][:info["length"]], info["token_type_ids"][:info["length"]],
        f"{info['masked_tokens'][0]}@{info['masked_positions'][0]}", steps=RECORD_STEPS)
    assert entry["ig_steps"] == RECORD_STEPS
    assert entry["probability"] == pytest.approx(again.probability, abs=1e-4)
    assert entry["ig"] == pytest.approx(again.attributions, abs=1e-4, rel=1e-3)


@pytest.mark.parametrize("explain", ["ig", "none"])
def test_explain_ig_or_none(tmp_path, explain):
    toy_run(tmp_path, epochs=1, spec=f"samples=0;epochs=last;explain={explain}")
    m = load_manifest(tmp_path)
    snap = m["snapshots"][-1]
    if explain == "none":
        assert "attributions" not in snap and "attribution" not in m
    else:
        assert m["attribution"]["methods"] == ["ig"]
        assert all("ig" in e and "layers" not in e for e in snap["attributions"][0])


def test_record_once_explains_a_classifier_prediction_and_skips_a_bare_encoder(tmp_path):
    from glassbert.heads import BertForSequenceClassification

    tok = toy_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=16,
                            id2label={0: "bad", 1: "good"})
    clf = BertForSequenceClassification(cfg).eval()
    run = record_once(clf, tok, ["I love cats.", "The sun is hot."], tmp_path / "clf")
    m = load_manifest(run)
    with torch.no_grad():
        predicted = clf(**tok(["I love cats.", "The sun is hot."], padding=True)).logits.argmax(-1).tolist()
    for entries, label in zip(m["snapshots"][0]["attributions"], predicted):
        [e] = entries
        assert e["target"] == f"label {cfg.id2label[label]!r}" and not e["gold"] and e["kind"] == "label"
    bare = record_once(BertModel(cfg), tok, ["I love cats."], tmp_path / "bare")
    assert "attributions" not in load_manifest(bare)["snapshots"][0]
