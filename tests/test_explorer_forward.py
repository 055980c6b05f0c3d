"""The exported page runs BERT itself: static/forward.js against the library, in a real headless Chromium.

The toy demo, the ALBERT toy and a tiny pretraining run are exported, each file opened from file:// with every
other request aborted; a pair is typed into the what-if (with a [MASK] in it, and a clicked word at one
snapshot), at three snapshots; every tensor the page computed (GB.pageModel.last) is compared with glassbert's
own forward under Capture (the recorder's ``take``) on the weights that snapshot recorded: max |diff| ≤ 1e-4.
MiniLM (one snapshot of ``explore minilm --text``) runs in a file whose bound holds its weights and vocabulary:
float32, or rounded to float16 (then compared with the library on the same rounded weights); its default export
stays under 25 MB and says which bound would let the page run it (that test needs no browser).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import glassbert
from glassbert.demo import run_demo
from glassbert.explorer import export_html
from glassbert.explorer.export import DEFAULT_EXPORT_BYTES
from glassbert.modeldir import resolve_model_path
from glassbert.recording import load_manifest, record_model
from glassbert.recording.snapshot import take
from glassbert.recording.store import RecordStore
from glassbert.tokenizer import IGNORE_INDEX, Tokenizer
from test_explorer_browser import browser, open_page, wait_for  # noqa: F401 (browser: the fixture)

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
TOL = 1e-4

BROWSER = [pytest.mark.browser, pytest.mark.slow]
MINILM_TEXT = "the cat chased the mouse across the garden."


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


@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> Path:
    """One snapshot of MiniLM on a sentence, as `glassbert explore minilm --text … --out DIR` records it."""
    return record_model("minilm", [MINILM_TEXT], tmp_path_factory.mktemp("minilm") / "rec")


def model_at_snapshot(run: Path, snap: int, source: Path | None = None, f16: bool = False) -> torch.nn.Module:
    """The run's model class (from ``source``, default the run) with the weights snapshot ``snap`` recorded (as
    the store gives them; ``f16``: rounded to float16, as an export that had to round them holds them), in eval mode."""
    store = RecordStore(run)
    manifest = store.manifest()
    model = getattr(glassbert, manifest["model"]).from_pretrained(source or run).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            arr, _ = store.tensor(snap, name, manifest=manifest)
            arr = np.ascontiguousarray(arr)
            p.copy_(torch.from_numpy(arr.astype(np.float16) if f16 else arr).to(p.dtype))
    return model


def library_tensors(run: Path, snap: int, text: str, pair: str | None, clicked: list[int], source: Path | None = None,
                    f16: bool = False) -> tuple[list[int], dict]:
    """glassbert's forward under Capture (the recorder's own ``take``) on the weights snapshot ``snap`` recorded:
    (the input ids, every captured tensor of the one sample)."""
    model = model_at_snapshot(run, snap, source, f16)
    tok = Tokenizer.from_pretrained(source or run)
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


def compare(run: Path, got: dict, text: str, pair: str | None, clicked: list[int], source: Path | None = None,
            f16: bool = False, scaled: bool = False) -> float:
    """The largest |page − library| over every tensor, each ≤ 1e-4; ``scaled``: ≤ 1e-4 · max(1, |library|), for
    MiniLM, whose FFN outputs reach |x| ≈ 200, where float32 values are 1.5e-5 apart (torch sums in float32, the
    page in float64: they differ by its rounding)."""
    ids, want = library_tensors(run, got["snap"], text, pair, clicked, source, f16)
    assert got["ids"] == ids
    assert set(got["tensors"]) == set(want), (sorted(set(want) - set(got["tensors"])), sorted(set(got["tensors"]) - set(want)))
    worst = 0.0
    for name, ref in want.items():
        mine = np.array(got["tensors"][name]["data"], dtype=np.float64).reshape(got["tensors"][name]["shape"])
        assert mine.shape == ref.shape, name
        gap = np.abs(mine - ref.astype(np.float64))
        diff = float(gap.max()) if ref.size else 0.0
        if scaled and ref.size:
            over = float((gap / np.maximum(1.0, np.abs(ref))).max())
            assert over <= TOL, f"{name} at snapshot {got['snap']}: max |diff| / max(1, |x|) {over}"
        else:
            assert diff <= TOL, f"{name} at snapshot {got['snap']}: max |diff| {diff}"
        worst = max(worst, diff)
    return worst


def what_if_at(page, snap: int, ids_len: int | None = None, timeout: float = 20.0) -> dict:
    def ready():
        last = page.evaluate("() => GB.pageModel.last && [GB.pageModel.last.snap, GB.pageModel.last.ids.length, GB.S.whatif && GB.S.whatif.snap]")
        return last and last[0] == snap and last[2] == snap and (ids_len is None or last[1] == ids_len)
    wait_for(page, ready, f"the page's what-if at snapshot {snap}", timeout)
    return page_tensors(page)


CASES = {  # run: (sentence A with a typed [MASK], sentence B, a word position to click at the last snapshot)
    "toy": ("the [MASK] chased the mouse", "it was a fast chase", 4),
    "albert": ("the dog [MASK] up the tree", "i need some milk", 1),
    "tiny": ("the whale was not yet [MASK] at all.", "he would not have troubled himself with boots", 2),
}


@pytest.mark.parametrize("which", list(CASES))
@pytest.mark.browser
@pytest.mark.slow
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


@pytest.mark.browser
@pytest.mark.slow
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


@pytest.mark.parametrize("bound_mb, weights", [(200, "float32"), (60, "float16")])
@pytest.mark.browser
@pytest.mark.slow
def test_an_export_with_room_for_its_weights_runs_minilm(offline, minilm, tmp_path, bound_mb, weights):
    """MiniLM (22.7 M weights, 30 522 tokens) in a file whose bound holds its weights: exact (float32) at 200 MB,
    rounded to float16 at 60 MB; the page tokenizes a typed sentence with the whole vocabulary and its every
    tensor equals the library's on the same weights (rounded to float16 for the second file)."""
    source = resolve_model_path("minilm")
    out = export_html(minilm, tmp_path / f"minilm-{weights}.html", bound_mb * 1e6, model="minilm")
    assert out.stat().st_size <= bound_mb * 1e6
    page, errors, requests = open_page(offline, out.as_uri())
    wait_for(page, lambda: not page.locator("#whatif-run").is_disabled(), "the what-if box")
    sub = page.locator("#whatif-sub").text_content()
    assert "runs in this page at every snapshot" in sub and (("rounded to float16" in sub) == (weights == "float16"))
    text = "a dog sleeps in the warm sun by the river"  # words the recording never saw: the whole vocabulary is in the file
    page.locator("#whatif-text").fill(text)
    page.locator("#whatif-run").click()
    got = what_if_at(page, 0, timeout=120)
    status = page.locator("#whatif-status").text_content()
    assert "run in this page" in status and (("rounded to float16 in this file" in status) == (weights == "float16"))
    assert not got["unknown"]
    worst = compare(minilm, got, text, None, [], source=source, f16=weights == "float16", scaled=True)
    first = got["ms"]
    page.locator("#whatif-text").fill(MINILM_TEXT)  # a second what-if: the weights are decoded already
    page.locator("#whatif-run").click()
    again = what_if_at(page, 0, ids_len=11, timeout=60)
    worst = max(worst, compare(minilm, again, MINILM_TEXT, None, [], source=source, f16=weights == "float16", scaled=True))
    print(f"\nMiniLM, weights {weights}: max |diff| {worst:.3g}; export {out.stat().st_size / 1e6:.1f} MB; what-if "
          f"{first:.0f} ms the first time ({len(got['ids'])} tokens), then {again['ms']:.0f} ms ({len(again['ids'])} tokens)")
    assert not errors, errors
    assert requests == [out.as_uri()]
    page.close()


def test_the_default_export_of_minilm_says_which_bound_runs_it(minilm, tmp_path):
    """The default file stays under 25 MB, leaves MiniLM's weights out and says so, naming --max-mb and the bound that
    holds them; that bound (the float16 one) gives a file in which the page runs the model."""
    said: list[str] = []
    out = export_html(minilm, tmp_path / "default.html", model="minilm", say=said.append)
    assert out.stat().st_size <= DEFAULT_EXPORT_BYTES
    html = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="glassbert-data">(.*?)</script>', html, re.S).group(1))
    man = data["manifest"]
    assert "embeddings.word_embeddings.weight" in man["export_dropped"]
    assert "export_vocab" not in man  # no vocabulary for a page that cannot run the model
    why = man["export_whatif"]
    assert why and said == [f"its what-if needs the server: {why}"]
    exact, rounded = (int(n) for n in re.findall(r"--max-mb (\d+) \((?:exact|weights rounded to float16)\)", why))
    assert 100 < exact < 130 and 50 < rounded < 65, why
    # the page shows the note as the reason its what-if needs the server (pagemodel.js reads export_whatif)
    assert "S.man.export_whatif" in html
    said.clear()
    fits = export_html(minilm, tmp_path / "f16.html", rounded * 1e6, model="minilm", say=said.append)
    assert fits.stat().st_size <= rounded * 1e6
    man = json.loads(re.search(r'id="glassbert-data">(.*?)</script>', fits.read_text(encoding="utf-8"), re.S).group(1))["manifest"]
    assert man["export_whatif"] is None and man["export_weights"] == "float16" and not man["export_dropped"]
    assert len(man["export_vocab"]) == 30522 and said == [
        "the page runs the model itself (weights as float16, rounded: a larger --max-mb keeps them exact)"]
