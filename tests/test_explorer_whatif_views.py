"""The what-if input in the attribution and comparison views, and the projector's focus label, in a real headless
Chromium (issue 30, defect 4 and the projector).

Served: after a what-if, the attribution view shows the typed input's tokens with the integrated gradients the
library computes for that input with the slider's snapshot's weights; the comparison view runs the what-if at
snapshots A and B and shows both and their difference; ten arrow presses on the slider ask the server once;
where the what-if cannot run (a snapshot whose weights were not recorded) both views are greyed and say why.
Exported (file://, the network blocked): the page has no gradients, so its attribution is occlusion, named so,
equal to the same occlusion computed by glassbert's model on the same snapshot's weights (≤ 1e-4); the
comparison runs the page's forward at both snapshots.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import glassbert
from glassbert.demo import run_demo
from glassbert.explain import Explainer
from glassbert.explorer import export_html, make_server
from glassbert.recording import load_manifest
from glassbert.recording.store import RecordStore
from glassbert.tokenizer import Tokenizer
from test_explorer_browser import (_drop_weights, _shots, browser, demo_run, move_slider_any, open_page,  # noqa: F401
                                   shown_attention, token_projection, wait_for)
from test_explorer_forward import library_tensors, model_at_snapshot, offline  # noqa: F401 (offline: the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path("/tmp/issue30-views")
TEXT, PAIR, CLICK = "the cat chased the mouse", "it was a fast chase", 2   # position 2: "cat"
TENSOR = "bert.encoder.layer.1.output.layernorm"


def model_at(run: Path, snap: int):
    """The run's model with the weights snapshot ``snap`` recorded (the saved model at the last one, as the
    server's what-if), in eval mode."""
    store = RecordStore(run)
    manifest = store.manifest()
    model = getattr(glassbert, manifest["model"]).from_pretrained(run).eval()
    if snap < len(manifest["snapshots"]) - 1:
        with torch.no_grad():
            for name, p in model.named_parameters():
                arr, _ = store.tensor(snap, name, manifest=manifest)
                p.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(p.dtype))
    return model


def typed_ids(run: Path) -> tuple[list[int], list[int], list[int], Tokenizer]:
    """The typed pair as the what-if reads it: (ids with the clicked word as [MASK], the ids before, segments, tok)."""
    tok = Tokenizer.from_pretrained(run)
    batch = tok(TEXT, text_pair=PAIR)
    original = batch["input_ids"][0].tolist()
    ids = list(original)
    ids[CLICK] = tok.mask_token_id
    return ids, original, batch["token_type_ids"][0].tolist(), tok


def library_ig(run: Path, snap: int) -> tuple[list[str], dict[str, list[float]]]:
    """The library's integrated gradients (32 steps, as recorded) of the typed pair at snapshot ``snap``: the
    tokens, and per target (the clicked word, the NSP head's predicted class) the values per token."""
    model = model_at(run, snap)
    ids, original, types, tok = typed_ids(run)
    word = tok.convert_ids_to_tokens([original[CLICK]])[0]
    with torch.no_grad():
        nsp = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).seq_relationship_logits[0]
    explainer = Explainer(model, tok)
    out = {}
    for target in (f"{word}@{CLICK}", ("IsNext", "NotNext")[int(nsp.argmax())]):
        r = explainer.explain_ids(ids, types, target, "ig", steps=32)
        out[r.target_class] = r.attributions
    return tok.convert_ids_to_tokens(ids), out


def library_occlusion(run: Path, snap: int, text: str = TEXT, pair: str = PAIR, click: int | None = CLICK
                      ) -> dict[str, np.ndarray]:
    """Occlusion by glassbert's model on snapshot ``snap``'s recorded weights: for each token but [CLS], [SEP],
    [PAD] and [MASK], p(target) − p(target with that token replaced by [MASK]). Targets: the word at the [MASK]
    (the clicked word ``click``; else the first typed [MASK]'s predicted word) and the pair head's predicted class."""
    from glassbert.explain import PAIR_LABELS
    from glassbert.explain.targets import pair_head

    model = model_at_snapshot(run, snap)
    tok = Tokenizer.from_pretrained(run)
    batch = tok(text, text_pair=pair)
    ids, types = batch["input_ids"][0].tolist(), batch["token_type_ids"][0].tolist()
    original = list(ids)
    if click is not None:
        ids[click] = tok.mask_token_id
    at = click if click is not None else ids.index(tok.mask_token_id)

    def probs(x: list[int]):
        with torch.no_grad():
            out = model(input_ids=torch.tensor([x]), token_type_ids=torch.tensor([types]))
        return out.prediction_logits[0, at].softmax(-1).double(), out.seq_relationship_logits[0].softmax(-1).double()

    word0, pair0 = probs(ids)
    word_id = original[click] if click is not None else int(word0.argmax())
    pair_cls = int(pair0.argmax())
    keep = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id}
    occ_word, occ_pair = np.zeros(len(ids)), np.zeros(len(ids))
    for i, t in enumerate(ids):
        if t in keep:
            continue
        x = list(ids)
        x[i] = tok.mask_token_id
        w, n = probs(x)
        occ_word[i] = float(word0[word_id] - w[word_id])
        occ_pair[i] = float(pair0[pair_cls] - n[pair_cls])
    return {tok.convert_ids_to_tokens([word_id])[0]: occ_word, PAIR_LABELS[pair_head(model)][pair_cls]: occ_pair}


def shown_attr(page) -> dict:
    """What the attribution view shows: method, snapshot, target, tokens and values."""
    return page.evaluate("""() => {
      const box = document.getElementById('attr-tokens'), spans = [...box.querySelectorAll('span.tok')];
      return { method: box.dataset.method || '', snap: box.dataset.snap === undefined ? null : Number(box.dataset.snap),
               target: document.querySelector('#attr-target option:checked')?.textContent || '',
               tokens: spans.map((s) => s.textContent), values: spans.map((s) => Number(s.dataset.value)),
               label: document.getElementById('attr-method').textContent,
               whatif: document.getElementById('attribution-view').classList.contains('whatif') };
    }""")


def wait_attr(page, snap: int, method: str, target: str | None = None) -> dict:
    def ready():
        a = shown_attr(page)
        ok = a["whatif"] and a["snap"] == snap and a["method"] == method and a["values"] and (target is None or target in a["target"])
        return a if ok else None
    return wait_for(page, ready, f"the what-if's {method} at snapshot {snap}")


def wait_diff(page, a: int, b: int) -> dict:
    c = page.locator("#diff-canvas")
    wait_for(page, lambda: c.get_attribute("data-whatif") and c.get_attribute("data-a") == str(a)
             and c.get_attribute("data-b") == str(b) and c.get_attribute("data-name") == TENSOR, f"the comparison {a} | {b}")
    return {"max": float(c.get_attribute("data-max")), "a": page.locator("#sbs-a-cap").text_content(),
            "b": page.locator("#sbs-b-cap").text_content(), "stats": page.locator("#diff-stats").text_content()}


def type_and_click(page) -> None:
    page.locator("#whatif-text").fill(TEXT)
    page.locator("#whatif-pair").fill(PAIR)
    page.locator("#whatif-run").click()
    wait_for(page, lambda: page.locator("#whatif-tokens span.tok").count() == 13, "the what-if tokens")
    page.locator(f'#whatif-tokens span.tok[data-pos="{CLICK}"]').click()
    wait_for(page, lambda: page.locator(f'#whatif-table tr[data-position="{CLICK}"]').count() == 1, "the [MASK] prediction")


def expected_max(run: Path, a: int, b: int) -> float:
    """max |A − B| of TENSOR for the typed pair (the clicked word masked) at snapshots a and b, by the library."""
    _, ta = library_tensors(run, a, TEXT, PAIR, [CLICK])
    _, tb = library_tensors(run, b, TEXT, PAIR, [CLICK])
    return float(np.abs(ta[TENSOR].astype(np.float64) - tb[TENSOR]).max())


def shots(page, selector: str, name: str) -> None:
    _shots(page, selector, name, folder=SHOTS, hide_controls=True)


def test_served_what_if_reaches_attribution_and_comparison(browser, demo_run):
    manifest = load_manifest(demo_run)
    n = len(manifest["snapshots"])
    srv = make_server(demo_run).start()
    try:
        page, errors, _ = open_page(browser, srv.url + f"#tensor={TENSOR}&b=0")
        page.set_viewport_size({"width": 1400, "height": 900})
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url.split("/api/", 1)[1]) if r.method == "POST" else None)
        type_and_click(page)
        # the attribution view: the typed input's tokens, the library's integrated gradients for it, at this snapshot
        tokens, want = library_ig(demo_run, n - 1)
        got = wait_attr(page, n - 1, "ig", "'cat'")
        assert got["tokens"] == tokens and tokens[CLICK] == "[MASK]"
        assert got["label"] == "Integrated gradients" and "(true)" in got["target"]
        np.testing.assert_allclose(got["values"], want["cat"], rtol=1e-3, atol=1e-9)
        late = got["values"]
        assert page.locator("#attr-layers-canvas").bounding_box()["height"] > 40       # layer conductance, for this input
        assert "what-if input" in page.locator("#attr-sub").text_content()
        nsp = next(k for k in want if k != "cat")
        page.select_option("#attr-target", "1")
        got = wait_attr(page, n - 1, "ig", nsp)
        np.testing.assert_allclose(got["values"], want[nsp], rtol=1e-3, atol=1e-9)
        page.select_option("#attr-target", "0")
        # the comparison view: the what-if input at A (the slider's snapshot) and B (snapshot 0), and A − B
        d = wait_diff(page, n - 1, 0)
        assert d["max"] == pytest.approx(expected_max(demo_run, n - 1, 0), abs=1e-5) and d["max"] > 1e-3
        assert "what-if input at epoch 80" in d["a"] and "what-if input at epoch 0 " in d["b"]
        assert "the weights recorded at epoch 0" in d["stats"]
        # an earlier snapshot: both follow the slider, with that snapshot's weights
        move_slider_any(page, 1)
        tokens, want = library_ig(demo_run, 1)
        got = wait_attr(page, 1, "ig", "'cat'")
        np.testing.assert_allclose(got["values"], want["cat"], rtol=1e-3, atol=1e-9)
        assert got["values"] != late
        d = wait_diff(page, 1, 0)
        assert d["max"] == pytest.approx(expected_max(demo_run, 1, 0), abs=1e-5)
        # ten arrow presses ask the server once, at the snapshot they end on (1 → 3): no stale answer is shown
        posts.clear()
        page.locator("#epoch-slider").focus()
        gaps, last = [], time.perf_counter()
        for key in ["ArrowRight", "ArrowRight", "ArrowLeft", "ArrowRight", "ArrowRight",
                    "ArrowLeft", "ArrowLeft", "ArrowLeft", "ArrowRight", "ArrowRight"]:
            page.keyboard.press(key)
            gaps.append(time.perf_counter() - last)
            last = time.perf_counter()
        wait_attr(page, 3, "ig", "'cat'")
        wait_diff(page, 3, 0)
        page.wait_for_timeout(800)  # anything still to be asked would be asked by now
        slow = sum(g > 0.25 for g in gaps[1:])  # a press that came after the quarter second the page waits
        assert posts.count("whatif") == 1 + slow, (posts, gaps)
        assert posts.count("whatif/attribution") == 1 + slow, (posts, gaps)
        assert page.evaluate("() => GB.S.whatif.snap") == 3
        assert shown_attention(page)["snap"] == 3 and shown_attention(page)["whatif"]
        assert "epoch 40" in page.locator("#whatif-status").text_content()
        # the map over training: "every snapshot" fills the rows of the snapshots not visited
        page.locator("#attr-every").click()
        wait_for(page, lambda: page.locator("#attr-epochs-canvas").get_attribute("data-filled") == str(n), "every row")
        # attributions are ~1e-3: the cells are written ×10^k (not all "0.00"), and the map says so
        assert int(page.locator("#attr-epochs-canvas").get_attribute("data-value-scale")) >= 2
        tokens, want = library_ig(demo_run, 3)
        np.testing.assert_allclose(shown_attr(page)["values"], want["cat"], rtol=1e-3, atol=1e-9)
        shots(page, "#attribution-view", "attribution-whatif-served")
        shots(page, "#diff-view", "comparison-whatif-served")
        # back to the recorded samples: the recorded attributions again
        page.locator("#whatif-clear").click()
        wait_for(page, lambda: not shown_attr(page)["whatif"], "the recorded sample")
        entry = manifest["snapshots"][3]["attributions"][0][0]
        wait_for(page, lambda: shown_attr(page)["values"] == pytest.approx(entry["ig"], abs=1e-6), "the recorded attribution")
        wait_for(page, lambda: not page.locator("#diff-canvas").get_attribute("data-whatif"), "the comparison of the recorded sample")
        assert not errors, errors
        page.close()
    finally:
        srv.stop()


def weights_only_at_the_last(run: Path, out: Path) -> Path:
    """A copy of ``run`` where the what-if can run only at the last snapshot, as the recorder's size bound leaves
    it: a recording of a base and changes, its earlier snapshots without weights; an older one, without its word
    embeddings (the saved model answers the last snapshot)."""
    manifest = load_manifest(run)
    if not manifest.get("weights"):
        return _drop_weights(run, out, f"{manifest['prefix']}embeddings.word_embeddings.weight")
    shutil.copytree(run, out)
    for entry in manifest["snapshots"][:-1]:
        entry["weights"] = "none"
    (out / "record" / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_served_views_greyed_where_the_what_if_cannot_run(browser, demo_run, tmp_path):
    """A recording whose earlier snapshots hold no weights: the what-if runs only at the last one, so the
    comparison with snapshot 0 and the attribution at snapshot 0 are greyed and say why."""
    run = weights_only_at_the_last(demo_run, tmp_path / "dropped")
    n = len(load_manifest(run)["snapshots"])
    srv = make_server(run).start()
    try:
        page, errors, _ = open_page(browser, srv.url + f"#tensor={TENSOR}&b=0")
        page.set_viewport_size({"width": 1400, "height": 900})
        type_and_click(page)
        wait_attr(page, n - 1, "ig", "'cat'")
        view = page.locator("#diff-view")
        wait_for(page, lambda: "refused" in (view.get_attribute("class") or ""), "the comparison refused")
        stats = page.locator("#diff-stats").text_content()
        assert "B (epoch 0 · step 0): no what-if at epoch 0" in stats, stats
        assert page.locator("#sbs-b-canvas").bounding_box() is None or page.locator("#sbs-b-canvas").bounding_box()["width"] == 0
        assert page.evaluate("getComputedStyle(document.querySelector('#diff-view .sbs')).opacity") == "0.35"
        shots(page, "#diff-view", "comparison-whatif-refused")
        move_slider_any(page, 0)
        card = page.locator("#attribution-view")
        wait_for(page, lambda: "refused" in (card.get_attribute("class") or ""), "the attribution refused")
        assert "no what-if here, so no attribution: no what-if at epoch 0" in page.locator("#attr-stats").text_content()
        assert page.locator("#attr-tokens span.tok").count() == 0
        assert "wi-refused" in page.locator("body").get_attribute("class")
        style = lambda sel, prop: page.evaluate(f"getComputedStyle(document.querySelector('{sel}')).{prop}")
        assert float(style("#attribution-view .attr-maps", "opacity")) < 0.5                # greyed …
        assert style("#attr-stats", "color") == "rgb(200, 56, 47)"                          # … and why, legible
        assert float(style("#attribution-view", "opacity")) == 1
        shots(page, "#attribution-view", "attribution-whatif-refused")
        move_slider_any(page, n - 1)
        wait_attr(page, n - 1, "ig", "'cat'")
        assert "refused" not in (card.get_attribute("class") or "")
        # the browser logs the refused requests' 400 itself (and the 404 of the token table at a snapshot without
        # weights, which the projector asks for); nothing else may be logged
        assert [e for e in errors if "status of 400" not in e and "status of 404" not in e] == [], errors
        page.close()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def albert_run(tmp_path_factory) -> Path:
    """The ALBERT toy demo (a sentence-order head), shortened to 60 epochs."""
    run = tmp_path_factory.mktemp("albert") / "albert"
    run_demo(run, epochs=60, record="epochs=0,5,20,last", arch="albert", progress=False, echo=lambda s: None)
    return run


def check_occlusion(page, run: Path, snap: int, word: str, text: str, pair: str, click: int | None) -> float:
    """The page's occlusion of both targets at ``snap`` equals the library's (≤ 1e-4): the worst |diff|."""
    want = library_occlusion(run, snap, text, pair, click)
    other = next(k for k in want if k != word)
    worst = 0.0
    for target, name in ((0, word), (1, other)):
        page.select_option("#attr-target", str(target))
        got = wait_attr(page, snap, "occlusion", f"'{name}'")
        assert got["label"].startswith("Occlusion") and "Integrated" not in got["label"]  # named by its method
        assert len(got["tokens"]) == len(want[name]) and "[MASK]" in got["tokens"]
        diff = float(np.abs(np.array(got["values"]) - want[name]).max())
        assert diff <= 1e-4, (snap, name, diff)
        worst = max(worst, diff)
    page.select_option("#attr-target", "0")
    assert "needs gradients" in page.locator("#attr-layers-hover").text_content()
    return worst


def test_exported_page_occlusion_and_comparison_offline(offline, demo_run, tmp_path):  # noqa: F811
    """BERT: the clicked word and the NSP head's class, by occlusion, at two snapshots; the comparison of the
    what-if input at A and B run by the page; "every snapshot" fills the map over training."""
    manifest = load_manifest(demo_run)
    n = len(manifest["snapshots"])
    out = export_html(demo_run, tmp_path / "demo.html")
    page, errors, requests = open_page(offline, out.as_uri() + f"#tensor={TENSOR}&b=0")
    page.set_viewport_size({"width": 1400, "height": 900})
    wait_for(page, lambda: not page.locator("#whatif-run").is_disabled(), "the what-if box")
    type_and_click(page)
    worst = 0.0
    for snap in (n - 1, 1):
        if snap != n - 1:
            move_slider_any(page, snap)
        worst = max(worst, check_occlusion(page, demo_run, snap, "cat", TEXT, PAIR, CLICK))
        if snap == n - 1:
            assert np.abs(np.array(shown_attr(page)["values"])).max() > 1e-3  # the map is not all zeros
        d = wait_diff(page, snap, 0)
        assert abs(d["max"] - expected_max(demo_run, snap, 0)) <= 1e-4 and d["max"] > 1e-3
        assert "run in this page" in d["stats"]
    page.locator("#attr-every").click()
    wait_for(page, lambda: page.locator("#attr-epochs-canvas").get_attribute("data-filled") == str(n), "every row")
    print(f"\nocclusion (BERT): max |diff| against the library {worst:.3g}")
    shots(page, "#attribution-view", "attribution-whatif-exported")
    shots(page, "#diff-view", "comparison-whatif-exported")
    assert not errors, errors
    assert all(r.startswith(out.as_uri()) for r in requests), requests  # the file only: nothing else loaded
    page.close()


def test_exported_albert_occlusion_offline(offline, albert_run, tmp_path):  # noqa: F811
    """ALBERT: a [MASK] typed in the text (its predicted word) and the sentence-order head's class."""
    text, pair = "the dog [MASK] up the tree", "i need some milk"
    n = len(load_manifest(albert_run)["snapshots"])
    out = export_html(albert_run, tmp_path / "albert.html")
    page, errors, requests = open_page(offline, out.as_uri())
    wait_for(page, lambda: not page.locator("#whatif-run").is_disabled(), "the what-if box")
    page.locator("#whatif-text").fill(text)
    page.locator("#whatif-pair").fill(pair)
    page.locator("#whatif-run").click()
    worst = 0.0
    for snap in (n - 1, 0):
        if snap != n - 1:
            move_slider_any(page, snap)
        want = library_occlusion(albert_run, snap, text, pair, None)
        word = next(iter(want))
        got = wait_attr(page, snap, "occlusion", f"'{word}'")
        assert "(predicted)" in got["target"]                                    # a typed [MASK]: no true word
        assert any(o.startswith("SOP '") for o in page.locator("#attr-target option").all_text_contents())
        worst = max(worst, check_occlusion(page, albert_run, snap, word, text, pair, None))
    print(f"\nocclusion (ALBERT): max |diff| against the library {worst:.3g}")
    assert not errors, errors
    assert all(r.startswith(out.as_uri()) for r in requests), requests
    page.close()


_TEXT_BOXES = """() => [...document.querySelectorAll('#proj-svg text')].filter((t) => getComputedStyle(t).visibility !== 'hidden')
  .map((t) => { const b = t.getBBox(); return [t.textContent, b.x, b.y, b.x + b.width, b.y + b.height, t.getAttribute('class') || '']; })"""


def _overlapping(boxes: list) -> list:
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5 and a[2] < b[4] - 0.5 and b[2] < a[4] - 0.5]


def test_projector_focus_label_never_covers_a_label(browser, demo_run):
    """The focused or hovered point's name is its own label, emphasised (nothing drawn over it); a point whose
    label was left out gets its name beside it, on no label that shows."""
    srv = make_server(demo_run).start()
    try:
        page, errors, _ = open_page(browser, srv.url)
        circles = token_projection(page)
        wait_for(page, lambda: circles.count() > 50, "a point per token of every sample")
        labelled = dict(circles.evaluate_all("cs => cs.map(c => [c.dataset.i, c.dataset.labelled])"))  # point → its label's fate
        assert "1" in labelled.values() and "0" in labelled.values(), labelled
        # the keyboard's focus on the chosen point (labelled first): its label emphasised, no second one
        page.locator("#proj-svg").focus()
        page.keyboard.press("ArrowRight")
        focus = page.locator("#proj-svg").get_attribute("data-focus")
        assert page.locator("#proj-svg text.hover").count() == 0
        assert page.locator("#proj-svg text.focus").count() == 1
        assert _overlapping(page.evaluate(_TEXT_BOXES)) == []
        shots(page, "#projector-view", "projector-focus-labelled")
        assert page.locator("#proj-svg").get_attribute("data-focus") == focus
        # the mouse on points with and without a label of their own
        for kind in ("1", "0"):
            for i in [k for k, v in labelled.items() if v == kind][:4]:
                page.locator(f'#proj-svg circle[data-i="{i}"]').dispatch_event("mouseenter")  # its own (another may lie on top)
                if kind == "1":
                    wait_for(page, lambda: page.locator("#proj-svg text.focus").count() == 1, "the own label emphasised")
                    assert page.locator("#proj-svg text.hover").count() == 0
                else:
                    wait_for(page, lambda: page.locator("#proj-svg text.hover").count() == 1, "the hover label")
                    assert page.locator("#proj-svg text.focus").count() == 0
                boxes = page.evaluate(_TEXT_BOXES)
                assert _overlapping(boxes) == [], (kind, i)
                assert all(0 <= b[1] and b[3] <= 560 and 0 <= b[2] and b[4] <= 420 for b in boxes if "hover" in b[5])
        shots(page, "#projector-view", "projector-focus-unlabelled")
        assert not errors, errors
        page.close()
    finally:
        srv.stop()
