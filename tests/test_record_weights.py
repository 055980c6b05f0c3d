"""A recording rebuilds every snapshot's weights: a float32 base, the rows of the embedding tables that training
changed (the others replayed through AdamW's weight decay), the other weights whole or as differences.

One small fine-tuning run (a classifier on the toy preset with a 1 000-word vocabulary of which training reads a
few dozen, the real Trainer, AdamW with weight decay) is recorded under a bound that makes the old layout drop the
token table; a callback keeps the model's parameters at every step to compare with.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from glassbert.config import BertConfig
from glassbert.heads import BertForSequenceClassification
from glassbert.recording import RecordCallback, Recorder, RecordStore, load_manifest
from glassbert.recording.store import MANIFEST_RESERVE
from glassbert.recording.weights import DECAY_FILE
from glassbert.recording.whatif import WhatIf, WhatIfInput, WhatIfRefused, runnable_snaps
from glassbert.tokenizer import Tokenizer
from glassbert.train import Callback, Trainer, TrainConfig

from helpers_record import PAIRS, SPECIALS

WORDS = sorted({w for a, b, _, _ in PAIRS for w in f"{a} {b}".lower().replace(".", " .").split()})
FILLER = [f"filler{i}" for i in range(1000)]  # words training never reads: their rows only decay
TRAIN = [(a, 1) for a, *_ in PAIRS] + [(b, 0) for _, b, *_ in PAIRS]
RECORDED = ["the cat chased the mouse .", "it was a fast chase .", "i love cats ."]
TABLE = "bert.embeddings.word_embeddings.weight"
SPEC = "samples=0,1,2;every_steps=3;explain=none"
STEPS = 12  # 12 examples in batches of 4: 3 steps an epoch, 4 epochs; snapshots at steps 0, 3, 6, 9, 12


def training_data(tok: Tokenizer) -> tuple[list[dict], Any, dict]:
    """The training items, their collate function, and the recorded samples (with labels)."""
    enc = tok([t for t, _ in TRAIN], padding=True)
    items = [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
              "attention_mask": enc["attention_mask"][i], "labels": torch.tensor(y)} for i, (_, y) in enumerate(TRAIN)]

    def collate(batch, generator):
        return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}

    samples = dict(tok(RECORDED, padding=True))
    samples["labels"] = torch.tensor([1, 0, 1])
    return items, collate, samples


def tokenizer() -> Tokenizer:
    return Tokenizer.from_vocab(SPECIALS + WORDS + FILLER)


def config_for(tok: Tokenizer) -> BertConfig:
    return BertConfig.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=16, num_labels=2,
                             hidden_size=64, num_attention_heads=4, intermediate_size=128)


class KeepWeights(Callback):
    """The model's parameters after every step (and before the first)."""

    def __init__(self):
        self.at: dict[int, dict[str, torch.Tensor]] = {}

    def _keep(self, trainer):
        self.at[trainer.state.step] = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    def on_train_begin(self, trainer):
        self._keep(trainer)

    def on_step_end(self, trainer, loss):
        self._keep(trainer)


def finetune(run: Path, max_bytes: int, seed: int = 0, lr: float = 2e-2) -> tuple[BertForSequenceClassification,
                                                                                  KeepWeights, Tokenizer]:
    tok = tokenizer()
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config_for(tok))
    items, collate, samples = training_data(tok)
    keep = KeepWeights()
    rec = Recorder(run, samples, tok, SPEC, max_bytes=max_bytes, texts=RECORDED)
    cfg = TrainConfig(out_dir=run, batch_size=4, lr=lr, weight_decay=0.01, epochs=4, seed=seed, log_every=100,
                      save_every=100, progress=False, overwrite=True, warmup_steps=2, precision="fp32")
    Trainer(model, items, collate, cfg, callbacks=[RecordCallback(rec), keep]).fit()
    model.save_pretrained(run, tokenizer=tok)
    return model, keep, tok


@pytest.fixture(scope="module")
def sizes(tmp_path_factory):
    """What one snapshot takes, from a run with room for everything: the first (activations and every weight in
    float32: what the old layout stores at every snapshot of a model this small) and the later ones, each encoding."""
    path = tmp_path_factory.mktemp("probe") / "run"
    finetune(path, 50_000_000)
    m = load_manifest(path)
    assert {s["weights"] for s in m["snapshots"]} == {"exact"}
    first = m["snapshots"][0]["bytes"]
    later = max(s["bytes"] for s in m["snapshots"][1:])
    matrices = sum(4 * int(np.prod(t["shape"])) for n, t in m["tensors"].items()
                   if t["kind"] == "weight" and len(t["shape"]) == 2 and n not in m["weights"]["tables"])
    rows = sum(t["shape"][0] for n, t in m["tensors"].items()
               if t["kind"] == "weight" and len(t["shape"]) == 2 and n not in m["weights"]["tables"])
    return {"first": first, "exact": later, "float16": later - matrices // 2, "int8": later - 3 * matrices // 4 + 4 * rows,
            "decay": (path / "record" / DECAY_FILE).stat().st_size, "n": len(m["snapshots"])}


def bound_between(sizes, low: str, high: str | None) -> int:
    """A bound whose room for each later snapshot lies halfway between two encodings' sizes."""
    per = (sizes[low] + (sizes[high] if high else sizes[low] + 20_000)) // 2 if low != "none" else sizes["int8"] - 20_000
    return MANIFEST_RESERVE + sizes["first"] + sizes["decay"] + (sizes["n"] - 1) * per


@pytest.fixture(scope="module")
def run(tmp_path_factory, sizes):
    run = tmp_path_factory.mktemp("weights") / "run"
    bound = bound_between(sizes, "exact", None)
    model, keep, tok = finetune(run, bound)
    return run, keep, bound


def test_the_bound_is_one_the_old_layout_drops_the_table_for(run, sizes):
    path, _, bound = run
    m = load_manifest(path)
    table = 4 * int(np.prod(m["tensors"][TABLE]["shape"]))
    old = MANIFEST_RESERVE + sizes["n"] * sizes["first"]  # each snapshot whole, weights float32 (hidden < 256)
    assert old > bound, "the old layout would have kept every weight: the test proves nothing"
    assert old - sizes["n"] * table <= bound  # without the token table it fits: the table is what it drops
    assert sum(p.stat().st_size for p in (path / "record").iterdir()) <= bound
    assert m["snapshots"][0]["bytes"] > table  # the base: every weight in float32


def test_every_snapshot_rebuilds_the_models_weights_bit_exactly(run):
    path, keep, _ = run
    m = load_manifest(path)
    store = RecordStore(path)
    assert [s["step"] for s in m["snapshots"]] == [0, 3, 6, 9, 12]
    assert m["weights"]["tables"] == ["bert.embeddings.word_embeddings.weight",
                                      "bert.embeddings.position_embeddings.weight",
                                      "bert.embeddings.token_type_embeddings.weight"]
    assert (path / "record" / DECAY_FILE).is_file()
    for k, entry in enumerate(m["snapshots"]):
        assert entry["weights"] == "exact" and entry["weights_error"] == 0.0
        truth = keep.at[entry["step"]]
        for name, want in truth.items():
            got = store.weight(k, name, manifest=m)
            assert got.dtype == torch.float32 and torch.equal(got, want), (k, name)
        if k:  # the table changed everywhere (weight decay), yet a later snapshot stores only the rows it read
            assert not torch.equal(truth[TABLE], keep.at[0][TABLE])
            rows = store.snapshot_raw(entry)[f"{TABLE}@rows"]["shape"][0]
            assert 0 < rows < 60 < len(FILLER)
            assert TABLE not in store.snapshot_raw(entry)
    # a slice of rows, as the page reads the table, is the same rows of the whole
    last = len(m["snapshots"]) - 1
    arr, dtype = store.tensor(last, TABLE, rows=(3, 40), manifest=m)
    assert dtype == "F32" and np.array_equal(arr, keep.at[12][TABLE][3:40].numpy())


def test_the_rows_training_never_read_are_the_start_times_each_steps_decay(run):
    """What the rebuild replays: row.mul_(1 - lr * wd), step by step, from the base (checked on the model's values)."""
    path, keep, _ = run
    filler = tokenizer().convert_tokens_to_ids(FILLER[:5])
    log = json.loads((path / "record" / DECAY_FILE).read_text())
    assert [row[0] for row in log["steps"]] == list(range(1, STEPS + 1))
    row = keep.at[0][TABLE][filler].clone()
    for step in range(1, STEPS + 1):
        row.mul_(log["steps"][step - 1][1])
        assert torch.equal(row, keep.at[step][TABLE][filler])


def _logits(manifest, directory: Path, snap: int, sample: int) -> np.ndarray:
    name = next(e["name"] for e in manifest["catalogue"] if e.get("role") == "class_logits")
    return RecordStore(directory).tensor(snap, name, sample)[0]


def test_the_servers_whatif_runs_each_snapshots_own_weights(run, tmp_path):
    path, _, _ = run
    m = load_manifest(path)
    whatif = WhatIf(RecordStore(path), None, tmp_path / "scratch")
    last = len(m["snapshots"]) - 1
    assert whatif.status(m)["snaps"] == list(range(last + 1)) and "refused" not in whatif.status(m)
    got = {}
    for snap in (0, last):
        answer = whatif.run(WhatIfInput(text=RECORDED[0]), snap=snap)
        assert answer.snap == snap and "exact" in answer.weights
        got[snap] = _logits(answer.manifest, answer.directory, 0, 0)
        recorded = _logits(m, path, snap, 0)
        assert np.abs(got[snap] - recorded).max() <= 1e-5, (snap, got[snap], recorded)
        probs = m["snapshots"][snap]["predictions"][0]["label_probs"]
        assert np.abs(np.array(answer.manifest["snapshots"][0]["predictions"][0]["label_probs"]) - probs).max() <= 1e-4
    assert np.abs(got[0] - got[last]).max() > 1e-2  # epoch 0 is not the trained model
    whatif.close()


@pytest.mark.parametrize("low, high", [("float16", "exact"), ("int8", "float16")])
def test_a_tighter_bound_keeps_differences_and_says_how_close(tmp_path, sizes, low, high):
    path = tmp_path / "run"
    bound = bound_between(sizes, low, high)
    _, keep, _ = finetune(path, bound)
    m = load_manifest(path)
    store = RecordStore(path)
    assert sum(p.stat().st_size for p in (path / "record").iterdir()) <= bound
    kinds = [s["weights"] for s in m["snapshots"]]
    # the room of each later snapshot is its share of what is left: what one saves, a later one may spend
    assert kinds[0] == "exact" and kinds[1] == low and set(kinds[1:]) <= {low, high}, kinds
    assert runnable_snaps(m) == list(range(len(m["snapshots"])))
    for k, entry in enumerate(m["snapshots"]):
        truth = keep.at[entry["step"]]
        error = max(float((store.weight(k, n, manifest=m) - w).abs().max()) for n, w in truth.items())
        assert error == entry["weights_error"]  # what the recorder measured and says
        moved = max(float((w - keep.at[0][n]).abs().max()) for n, w in truth.items())  # the largest change
        # float16 keeps 11 significant bits of each difference, int8 one 254th of its row's largest
        assert error <= {"exact": 0.0, "float16": moved / 2**11, "int8": moved / 254}[entry["weights"]] + 1e-7, \
            (k, entry["weights"], error, moved)
        assert torch.equal(store.weight(k, TABLE, manifest=m), truth[TABLE])  # the table stays exact
    whatif = WhatIf(store, None, tmp_path / "scratch")
    answer = whatif.run(WhatIfInput(text=RECORDED[0]), snap=1)  # snapshot 1 kept its matrices as differences
    assert f"within {m['snapshots'][1]['weights_error']:.1e}" in answer.weights and low in answer.weights
    assert np.abs(_logits(answer.manifest, answer.directory, 0, 0) - _logits(m, path, 1, 0)).max() <= 1e-3
    whatif.close()


def test_snapshots_without_room_for_weights_are_refused(tmp_path, sizes):
    path = tmp_path / "run"
    finetune(path, bound_between(sizes, "none", None))
    m = load_manifest(path)
    kinds = [s["weights"] for s in m["snapshots"]]
    assert kinds[0] == "exact" and "none" in kinds, kinds
    runnable = runnable_snaps(m)
    assert runnable == [k for k, w in enumerate(kinds) if w != "none"]
    refused = kinds.index("none")
    whatif = WhatIf(RecordStore(path), None, tmp_path / "scratch")
    status = whatif.status(m)
    assert status["snaps"] == runnable and "no room" in status["refused"]
    with pytest.raises(WhatIfRefused, match="holds no weights"):
        whatif.run(WhatIfInput(text=RECORDED[0]), snap=refused)
    with pytest.raises(LookupError, match="holds no weights"):
        RecordStore(path).tensor(refused, TABLE)
    whatif.close()


def test_a_decay_log_that_no_longer_matches_refuses_the_rebuild(run, tmp_path):
    path, _, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    log_path = copy / "record" / DECAY_FILE
    log = json.loads(log_path.read_text())
    log["steps"][4][1] *= 1.0000001  # step 5's factor, as a resumed run with another lr would log it
    log_path.write_text(json.dumps(log))
    store = RecordStore(copy)
    assert torch.equal(store.weight(1, TABLE), RecordStore(path).weight(1, TABLE))  # step 3: before the change
    with pytest.raises(LookupError, match="cannot be rebuilt exactly"):
        store.weight(2, TABLE)
    log_path.unlink()
    with pytest.raises(LookupError, match="cannot be rebuilt exactly"):
        store.weight(1, TABLE)


def test_an_old_recording_reads_and_refuses_as_before(tmp_path):
    """tests/data/v1-run (glassbert before this layout): weights read as stored, what-if at every snapshot (it holds
    them all); a recording of the old layout that dropped the table runs at the last snapshot only."""
    old = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "data" / "v1-run", old)
    m = load_manifest(old)
    assert "weights" not in m
    assert RecordStore(old).tensor(1, TABLE)[0].shape == tuple(m["tensors"][TABLE]["shape"])
    assert runnable_snaps(m) == list(range(len(m["snapshots"])))
    with pytest.raises(LookupError, match="whole"):
        RecordStore(old).weight(0, TABLE)
    dropped = dict(m, dropped=[TABLE])
    assert runnable_snaps(dropped) == [len(m["snapshots"]) - 1]


def test_the_export_holds_each_snapshots_rebuilt_weights(run, tmp_path):
    from glassbert.explorer.export import export_html

    path, keep, _ = run
    out = export_html(path, tmp_path / "page.html")
    html = out.read_text(encoding="utf-8")
    start = html.index('id="glassbert-data">') + len('id="glassbert-data">')
    data = json.loads(html[start:html.index("</script>", start)].replace("\\/", "/"))
    assert not any("@" in name for tensors in data["tensors"] for name in tensors)
    import base64
    import zlib
    for k, entry in enumerate(data["manifest"]["snapshots"]):
        got = data["tensors"][k]["classifier.weight"]
        assert got["dtype"] == "f32"
        arr = np.frombuffer(zlib.decompress(base64.b64decode(got["b64"])), dtype="<f4").reshape(got["shape"])
        assert np.array_equal(arr, keep.at[entry["step"]]["classifier.weight"].numpy())


class StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, loss):
        if trainer.state.step == self.step:
            raise KeyboardInterrupt


def test_a_resumed_run_still_rebuilds_every_snapshot_exactly(run, sizes, tmp_path):
    """Stopped at step 5, resumed from the checkpoint of step 4 (the decay log written with it holds step 4, which no
    snapshot wrote): every snapshot rebuilds the weights of the run that never stopped, bit for bit, and the token
    table still costs only the rows training read."""
    _, keep, bound = run
    path = tmp_path / "run"
    tok = tokenizer()
    items, collate, samples = training_data(tok)
    for resume, stop in ((False, [StopAt(5)]), (True, [])):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config_for(tok))
        rec = Recorder(path, samples, tok, SPEC, max_bytes=bound, texts=RECORDED, resume=resume)
        cfg = TrainConfig(out_dir=path, batch_size=4, lr=2e-2, weight_decay=0.01, epochs=4, seed=0, log_every=100,
                          save_every=2, progress=False, overwrite=not resume, warmup_steps=2, precision="fp32")
        trainer = Trainer(model, items, collate, cfg, callbacks=[RecordCallback(rec), *stop])
        if resume:
            trainer.fit(resume=True)
        else:
            with pytest.raises(KeyboardInterrupt):
                trainer.fit()
            assert [s["step"] for s in load_manifest(path)["snapshots"]] == [0, 3]
    m = load_manifest(path)
    assert [s["step"] for s in m["snapshots"]] == [0, 3, 6, 9, 12]
    store = RecordStore(path)
    for k, entry in enumerate(m["snapshots"]):
        assert entry["weights"] == "exact"
        for name, want in keep.at[entry["step"]].items():
            assert torch.equal(store.weight(k, name, manifest=m), want), (k, name)
        if k:
            assert store.snapshot_raw(entry)[f"{TABLE}@rows"]["shape"][0] < 60
