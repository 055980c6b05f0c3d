"""The exported page runs BERT itself: static/forward.js against the library, in a real headless Chromium.

The toy demo, the ALBERT toy and a tiny pretraining run are exported, each file opened from file:// with every
other request aborted; a pair is typed into the what-if (with a [MASK] in it, and a clicked word at one
snapshot), at three snapshots; every tensor the page computed (GB.pageModel.last) is compared with glassbert's
own forward under Capture (the recorder's ``take``) on the weights that snapshot recorded: max |diff| ≤ 1e-4.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import glassbert
from glassbert.demo import run_demo
from glassbert.explorer import export_html
from glassbert.recording import load_manifest
from glassbert.recording.snapshot import take
from glassbert.recording.store import RecordStore
from glassbert.tokenizer import IGNORE_INDEX, Tokenizer
from test_explorer_browser import browser, open_page, wait_for  # noqa: F401 (browser: the fixture)

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
TOL = 1e-4

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def offline(browser):
    """The browser with the network blocked: only the file itself loads."""
    browser.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    yield browser
    browser.unroute("**/*")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, vocab_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forward")
    quiet = dict(progress=False, echo=lambda s: None)
    run_demo(root / "toy", epochs=60, record="epochs=0,5,20,last", **quiet)
    run_demo(root / "albert", epochs=60, record="epochs=0,5,20,last", arch="albert", **quiet)
    from glassbert.cli import main
    args = ["pretrain", "--corpus", str(CORPUS), "--vocab", str(vocab_dir), "--out", str(root / "tiny"), "--preset",
            "tiny", "--max-seq-length", "64", "--batch-size", "16", "--lr", "1e-3", "--steps", "6",
            "--eval-every", "100", "--threads", "1", "--record", "samples=0,1;every_steps=2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {"toy": root / "toy", "albert": root / "albert", "tiny": root / "tiny"}


def model_at_snapshot(run: Path, snap: int) -> torch.nn.Module:
    """The run's model class with the weights snapshot ``snap`` recorded (as the store gives them), in eval mode."""
    store = RecordStore(run)
    manifest = store.manifest()
    model = getattr(glassbert, manifest["model"]).from_pretrained(run).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            arr, _ = store.tensor(snap, name, manifest=manifest)
            p.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(p.dtype))
    return model


def library_tensors(run: Path, snap: int, text: str, pair: str, clicked: list[int]) -> tuple[list[int], dict]:
    """glassbert's forward under Capture (the recorder's own ``take``) on the weights snapshot ``snap`` recorded:
    (the input ids, every captured tensor of the one sample)."""
    model = model_at_snapshot(run, snap)
    tok = Tokenizer.from_pretrained(run)
    batch = tok(text, text_pair=pair)
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    ids = inputs["input_ids"]
    typed = (ids[0] == tok.mask_token_id).nonzero().flatten().tolist()
    positions = typed
    if clicked:  # as the what-if does: the clicked words become [MASK], their ids the labels
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[0, typed] = tok.mask_token_id
        labels[0, clicked] = ids[0, clicked]
        ids = ids.clone()
        ids[0, clicked] = tok.mask_token_id
        inputs.update(input_ids=ids, labels=labels)
        positions = sorted(set(typed) | set(clicked))
    shot = take(model, inputs, [positions], dtype_name="float32", weights=False)
    return ids[0].tolist(), {name: t[0].float().numpy() for name, t in shot.tensors.items()}


def page_tensors(page) -> dict:
    return page.evaluate("""() => {
      const t = GB.pageModel.last, out = {};
      for (const [k, v] of t.tensors) out[k] = { shape: v.shape, data: Array.from(v.data) };
      return { snap: t.snap, ids: t.ids, unknown: t.unknown, ms: t.ms, tensors: out };
    }""")


def compare(run: Path, got: dict, text: str, pair: str, clicked: list[int]) -> float:
    ids, want = library_tensors(run, got["snap"], text, pair, clicked)
    assert got["ids"] == ids
    assert set(got["tensors"]) == set(want), (sorted(set(want) - set(got["tensors"])), sorted(set(got["tensors"]) - set(want)))
    worst = 0.0
    for name, ref in want.items():
        mine = np.array(got["tensors"][name]["data"], dtype=np.float64).reshape(got["tensors"][name]["shape"])
        assert mine.shape == ref.shape, name
        diff = float(np.abs(mine - ref.astype(np.float64)).max()) if ref.size else 0.0
        assert diff <= TOL, f"{name} at snapshot {got['snap']}: max |diff| {diff}"
        worst = max(worst, diff)
    return worst


def what_if_at(page, snap: int, ids_len: int | None = None) -> dict:
    def ready():
        last = page.evaluate("() => GB.pageModel.last && [GB.pageModel.last.snap, GB.pageModel.last.ids.length, GB.S.whatif && GB.S.whatif.snap]")
        return last and last[0] == snap and last[2] == snap and (ids_len is None or last[1] == ids_len)
    wait_for(page, ready, f"the page's what-if at snapshot {snap}")
    return page_tensors(page)


CASES = {  # run: (sentence A with a typed [MASK], sentence B, a word position to click at the last snapshot)
    "toy": ("the [MASK] chased the mouse", "it was a fast chase", 4),
    "albert": ("the dog [MASK] up the tree", "i need some milk", 1),
    "tiny": ("the whale was not yet [MASK] at all.", "he would not have troubled himself with boots", 2),
}


@pytest.mark.parametrize("which", list(CASES))
def test_the_exported_page_runs_the_model_itself(offline, runs, tmp_path, which):
    run = runs[which]
    text, pair, click = CASES[which]
    out = export_html(run, tmp_path / f"{which}.html")
    page, errors, requests = open_page(offline, out.as_uri())
    wait_for(page, lambda: not page.locator("#whatif-run").is_disabled(), "the what-if box")
    n = len(load_manifest(run)["snapshots"])
    assert n >= 3
    assert "runs in this page at every snapshot" in page.locator("#whatif-sub").text_content()
    page.locator("#whatif-text").fill(text)
    page.locator("#whatif-pair").fill(pair)
    worst, times = 0.0, []
    for k, snap in enumerate([n - 1, 1, 0]):
        if k == 0:
            page.locator("#whatif-run").click()
        else:
            # the slider's mark of that snapshot (epochs for the demos, steps for the pretraining run)
            page.locator("#epoch-slider").fill(page.locator("#epoch-marks option").nth(snap).get_attribute("value"))
        got = what_if_at(page, snap)
        assert f"epoch {load_manifest(run)['snapshots'][snap]['epoch']}" in page.locator("#whatif-status").text_content()
        assert "run in this page" in page.locator("#whatif-status").text_content()
        worst = max(worst, compare(run, got, text, pair, []))
        times.append(got["ms"])
    # a clicked word: the MLM head's labels path, and the views show the what-if input
    page.locator(f'#whatif-tokens span.tok[data-pos="{click}"]').click()
    wait_for(page, lambda: page.locator(f'#whatif-table tr[data-position="{click}"]').count() == 1, "the clicked word's prediction")
    got = page_tensors(page)
    worst = max(worst, compare(run, got, text, pair, [click]))
    row = page.locator(f'#whatif-table tr[data-position="{click}"]')
    name = next(k for k in got["tensors"] if k.endswith("predictions.softmax"))
    probs = np.array(got["tensors"][name]["data"]).reshape(got["tensors"][name]["shape"])
    masked = json.loads(  # the head's rows follow the masked positions
        page.evaluate("() => JSON.stringify(GB.S.whatif.man.samples[0].masked_positions)"))
    top = np.argsort(-probs[masked.index(click)], kind="stable")[:5].tolist()
    assert json.loads(row.get_attribute("data-ids")) == top  # the table shows what the page computed
    assert page.evaluate("() => GB.wiActive()")
    print(f"\n{which}: max |diff| {worst:.3g}; what-if {', '.join(f'{t:.1f}' for t in times)} ms; "
          f"export {out.stat().st_size / 1e6:.2f} MB")
    assert not errors, errors
    assert requests == [out.as_uri()]
    page.close()


def test_a_word_out_of_the_vocabulary_is_said_to_become_unk(offline, runs, tmp_path):
    out = export_html(runs["toy"], tmp_path / "toy.html")
    page = offline.new_page()
    page.goto(out.as_uri())
    wait_for(page, lambda: not page.locator("#whatif-run").is_disabled(), "the what-if box")
    page.locator("#whatif-text").fill("the zebra chased the mouse")
    page.locator("#whatif-run").click()
    wait_for(page, lambda: "[UNK]" in page.locator("#whatif-status").text_content(), "the [UNK] note")
    assert '"zebra"' in page.locator("#whatif-status").text_content()
    ids, _ = library_tensors(runs["toy"], 0, "the zebra chased the mouse", None, [])
    assert page.evaluate("() => GB.pageModel.last.ids") == ids
    page.close()
