"""The explorer page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Opens the page for the demo run, moves the epoch slider, opens head 3 of layer 2 and checks that the
values the page shows change with the epoch and equal the recorded tensor; then the same on the
exported single file (offline, file://), and on the real MiniLM checkpoint (6 layers, 12 heads).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from glassbert.explorer import export_html, make_server
from glassbert.recording import load_manifest, load_tensor

from glassbert.demo import run_demo

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=ARGS, viewport={"width": 1440, "height": 1000})
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """The real `glassbert demo`, shortened to 80 epochs."""
    run = tmp_path_factory.mktemp("browser") / "demo"
    run_demo(run, epochs=80, record="epochs=0,5,20,40,last", progress=False, echo=lambda s: None)
    return run


def wait_for(page, predicate, what: str, timeout: float = 20.0):
    """Poll from Python (the page's CSP forbids the eval that page.wait_for_function uses)."""
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def shown_attention(page) -> dict:
    return json.loads(page.locator("#attention-values").text_content() or "{}")


def open_page(ctx, url: str):
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    wait_for(page, lambda: shown_attention(page).get("values"), "the attention view")
    return page, errors, requests


def check_head(page, run: Path, snap: int, layer: int, head: int, sample: int = 0, f16: bool = False) -> np.ndarray:
    """The page shows the recorded probabilities of this head (an exported file: as float16, what it stores)."""
    page.select_option("#layer-select", str(layer))
    page.select_option("#head-select", str(head))
    shown = wait_for(page, lambda: (lambda d: d if (d.get("layer"), d.get("head"), d.get("snap")) == (layer, head, snap) else None)(
        shown_attention(page)), f"layer {layer} head {head} at snapshot {snap}")
    name = f"{load_manifest(run)['prefix']}encoder.layer.{layer}.attention.self.probs"
    assert shown["name"] == name
    n = load_manifest(run)["samples"][sample]["length"]
    recorded = load_tensor(run, snap, name, sample=sample)[head, :n, :n].numpy()
    if f16:
        recorded = recorded.astype(np.float16).astype(np.float32)
    values = np.array(shown["values"], dtype=np.float32)
    assert values.shape == recorded.shape
    np.testing.assert_array_equal(values, recorded)
    assert shown["tokens"] == load_manifest(run)["samples"][sample]["tokens"][:n]
    return values


def move_slider(page, snap: int):
    """The slider moves in epochs: put it at snapshot ``snap``'s epoch (fires input + change like a drag ending there)."""
    epoch = page.locator("#epoch-marks option").nth(snap).get_attribute("value")  # one mark per snapshot
    page.locator("#epoch-slider").fill(str(epoch))
    wait_for(page, lambda: shown_attention(page).get("snap") == snap, f"the slider at {snap}")
    assert page.locator("#epoch-slider").get_attribute("aria-valuetext").startswith(f"epoch {epoch} ")


def test_demo_page_slider_and_attention_head(browser, demo_run, tmp_path):
    srv = make_server(demo_run).start()
    try:
        page, errors, requests = open_page(browser, srv.url)
        n = len(load_manifest(demo_run)["snapshots"])
        assert page.locator("#epoch-label").text_content() == "epoch 80 · step 80"
        assert page.locator("#input-summary").text_content() == \
            "Token table, masked positions and word ids, IsNext, vocabulary"
        late = check_head(page, demo_run, n - 1, layer=1, head=3)
        move_slider(page, 0)
        assert page.locator("#epoch-label").text_content() == "epoch 0 · step 0"
        early = check_head(page, demo_run, 0, layer=1, head=3)
        assert np.abs(early - late).max() > 1e-3, "the shown values must change through training"
        move_slider(page, 2)
        check_head(page, demo_run, 2, layer=1, head=3)
        # the other views follow the slider too
        assert "epoch 20" in page.locator("#pred-sub").text_content()
        assert page.locator("#prediction-table tr").count() == 1 + 6
        assert page.locator("#curves svg").count() >= 1
        # the demo's constant learning rate is drawn at mid-height, its value on the axis (it lay on the bottom line)
        lr = page.locator('#curves svg[data-chart="lr"] path[data-key="lr"]').get_attribute("d")
        ys = {float(p.split(",")[1]) for p in lr[1:].split("L")}
        assert len(ys) == 1 and abs(ys.pop() - (24 + 190 - 30) / 2) < 1
        # a block of the architecture opens its tensor in the matrix view
        page.locator('#arch-layer-tabs button[data-layer="1"]').click()
        page.locator('#arch-svg g.blk[data-name="bert.encoder.layer.1.attention.self.query"]').click(timeout=5000)
        T = len(load_manifest(demo_run)["samples"][0]["input_ids"])
        wait_for(page, lambda: page.locator("#matrix-shape").text_content() == f"shape [5, {T}, 4]", "the matrix view")
        move_slider(page, n - 1)
        # the view is in the address: a reload opens the same snapshot, head and tensor
        assert "head=3" in page.url and "layer=1" in page.url and "epoch=80" in page.url
        move_slider(page, 2)
        page.reload()
        shown = wait_for(page, lambda: (lambda d: d if d.get("snap") == 2 else None)(shown_attention(page)), "the linked view")
        assert (shown["layer"], shown["head"]) == (1, 3)
        assert page.locator("#matrix-name").text_content() == "bert.encoder.layer.1.attention.self.query"
        # canvases speak: a text alternative names the tensor, the sample and the epoch
        assert "epoch 20" in page.locator("#attention-canvas").get_attribute("aria-label")
        move_slider(page, n - 1)
        page.locator("header.top").scroll_into_view_if_needed()  # the sticky bar back at the top
        shot = tmp_path / "explorer-demo.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        shutil.copy(shot, "/tmp/explorer-demo.png")
        assert not errors, errors
        assert all(u.startswith(srv.url) for u in requests), [u for u in requests if not u.startswith(srv.url)]
        page.close()
    finally:
        srv.stop()


def test_exported_file_works_offline(browser, demo_run, tmp_path):
    out = export_html(demo_run, tmp_path / "demo.html")
    page, errors, requests = open_page(browser, out.as_uri())
    n = len(load_manifest(demo_run)["snapshots"])
    check_head(page, demo_run, n - 1, layer=1, head=2, f16=True)
    move_slider(page, 1)
    check_head(page, demo_run, 1, layer=0, head=4, f16=True)  # decoded through the XOR chain of snapshots 0 and 1
    # a tensor the file rebuilds (masked scores = scaled scores + mask): −∞ on the [PAD] key
    page.select_option("#attn-kind", "attention_masked")
    shown = wait_for(page, lambda: (lambda d: d if d.get("kind") == "attention_masked" else None)(shown_attention(page)), "masked scores")
    assert shown["name"].endswith("attention.self.scores_masked")
    assert not errors, errors
    assert requests == [out.as_uri()]
    page.close()


def test_minilm_page(browser, minilm_path, tmp_path, caplog):
    import torch

    from glassbert.model import BertModel
    from glassbert.recording import record_once
    from glassbert.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained(minilm_path)
    model = BertModel.from_pretrained(minilm_path)
    long = ("The cat chased the mouse across the kitchen, under the table and out through the garden door "
            "while the dog slept by the fire. ") * 5
    with caplog.at_level(logging.WARNING, logger="glassbert"):
        run = record_once(model, tok, ["The cat chased the mouse. It was a fast chase.", long],
                          tmp_path / "minilm", max_length=128)
    assert "truncated" in caplog.text
    assert load_manifest(run)["samples"][1]["length"] == 128
    srv = make_server(run).start()
    try:
        page, errors, _ = open_page(browser, srv.url)
        check_head(page, run, 0, layer=1, head=7)
        page.select_option("#sample-select", "1")
        wait_for(page, lambda: len(shown_attention(page).get("values", [])) == 128, "the 128-token sample")
        check_head(page, run, 0, layer=5, head=11, sample=1)
        # a bare encoder: no masked words, no pair label to list
        assert page.locator("#input-summary").text_content() == "Token table, vocabulary"
        # the diagram fits its panel: the attention scores' chain (five [12, 128, 128] boxes) goes on below
        fits = "document.getElementById('arch-svg').getBoundingClientRect().width <= document.querySelector('.arch-scroll').clientWidth"
        assert page.evaluate(fits)
        page.locator('#arch-svg g.blk[data-name="encoder.layer.0.intermediate.activation"]').click(timeout=5000)
        wait_for(page, lambda: page.locator("#matrix-shape").text_content() == "shape [128, 1536]", "the FFN tensor")
        page.locator("header.top").scroll_into_view_if_needed()
        shot = tmp_path / "explorer-minilm.png"
        page.screenshot(path=str(shot), full_page=True)
        shutil.copy(shot, "/tmp/explorer-minilm.png")
        assert not errors, errors
        page.close()
    finally:
        srv.stop()


def shown_attribution(page) -> list[float]:
    return [float(v) for v in page.locator("#attr-tokens span.tok").evaluate_all(
        "spans => spans.map(s => s.dataset.value)")]


def test_attribution_view_follows_sample_target_and_slider(browser, demo_run, tmp_path):
    """The tokens coloured by the recorded integrated gradients of the chosen sample, target and snapshot,
    the layers × tokens conductance map and the snapshots × tokens map."""
    manifest = load_manifest(demo_run)
    n = len(manifest["snapshots"])
    srv = make_server(demo_run).start()
    try:
        page, errors, _ = open_page(browser, srv.url)
        assert page.locator("#attribution-view").is_visible()

        def check(snap: int, sample: int, target: int) -> list[float]:
            entry = manifest["snapshots"][snap]["attributions"][sample][target]
            want = entry["ig"]
            got = wait_for(page, lambda: (lambda v: v if v == pytest.approx(want, abs=1e-6) else None)(
                shown_attribution(page)), f"the attribution of snapshot {snap} sample {sample} target {target}")
            assert page.locator("#attr-target").input_value() == str(target)
            assert entry["target"] in page.locator("#attr-target option:checked").text_content()
            assert f"after {entry['ig_steps']} steps" in page.locator("#attr-stats").text_content()
            return got

        late = check(n - 1, 0, 0)
        assert page.locator("#attr-tokens span.tok").count() == manifest["samples"][0]["length"]
        assert page.locator("#attr-layers-canvas").bounding_box()["height"] > 40
        assert page.locator("#attr-epochs-canvas").bounding_box()["height"] > 40
        page.select_option("#attr-target", "1")  # the NSP label
        check(n - 1, 0, 1)
        move_slider(page, 0)
        early = check(0, 0, 1)
        page.select_option("#sample-select", "3")
        check(0, 3, 1)
        page.select_option("#attr-target", "0")
        move_slider(page, n - 1)
        check(n - 1, 3, 0)
        assert early != late
        page.locator("#attribution-view").scroll_into_view_if_needed()
        shot = tmp_path / "explorer-attribution.png"
        page.locator("#attribution-view").screenshot(path=str(shot))
        shutil.copy(shot, "/tmp/explorer-attribution.png")
        assert not errors, errors
        page.close()
    finally:
        srv.stop()


def test_side_by_side_tour_and_narrow_screen(browser, demo_run, tmp_path):
    """A | B | A − B of one tensor equal the recorded snapshots; the tour visits every section; at 800 px
    nothing overflows the page; no console errors."""
    manifest = load_manifest(demo_run)
    n = len(manifest["snapshots"])
    name = "bert.embeddings.sum"
    srv = make_server(demo_run).start()
    try:
        page, errors, _ = open_page(browser, srv.url + f"#epoch=80&tensor={name}&b=0")
        wait_for(page, lambda: page.locator("#diff-canvas").get_attribute("data-name") == name, "the side-by-side view")
        assert (page.locator("#diff-canvas").get_attribute("data-a"), page.locator("#diff-canvas").get_attribute("data-b")) == (str(n - 1), "0")
        a, b = load_tensor(demo_run, n - 1, name, sample=0), load_tensor(demo_run, 0, name, sample=0)
        want = f"max |A−B| {float((a - b).abs()[:manifest['samples'][0]['length']].max()):.4g}"
        assert want.split()[-1][:5] in page.locator("#diff-stats").text_content()
        assert "epoch 80" in page.locator("#sbs-a-cap").text_content() and "epoch 0" in page.locator("#sbs-b-cap").text_content()
        # a locked colour scale stays as it is while B moves
        page.locator("#diff-lock").check()
        before = page.locator("#sbs-colorbar").text_content()
        page.locator("#diff-b").fill("2")
        wait_for(page, lambda: page.locator("#diff-canvas").get_attribute("data-b") == "2", "B at snapshot 2")
        assert page.locator("#sbs-colorbar").text_content() == before and "(locked)" in before
        page.locator("#diff-view").screenshot(path=str(tmp_path / "sbs.png"))
        shutil.copy(tmp_path / "sbs.png", "/tmp/explorer-side-by-side.png")
        # the tour: every step opens its section
        page.locator("#tour-button").click()
        seen = []
        for _ in range(20):
            seen.append(page.locator("body").get_attribute("data-tour"))
            if page.locator("#tour-next").text_content().startswith("finish"):
                break
            page.locator("#tour-next").click()
        assert seen[:2] == ["config-panel", "input-panel"]
        for section in ("matrix-view", "attention-view", "predictions-panel", "diff-view"):
            assert section in seen, seen
        assert len(seen) == 10
        page.locator("#tour-next").click()
        assert page.locator("#tour-box").is_hidden()
        # 800 px wide: no horizontal overflow
        page.set_viewport_size({"width": 800, "height": 900})
        move_slider(page, 1)
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        page.screenshot(path=str(tmp_path / "narrow.png"))
        shutil.copy(tmp_path / "narrow.png", "/tmp/explorer-800.png")
        assert not errors, errors
        page.close()
    finally:
        srv.stop()


def library_forward(run: Path, a: str, b: str, masked: list[int], snap: int | None = None):
    """The library on the same input: the run's model (or the weights snapshot ``snap`` recorded), the clicked
    positions replaced by [MASK]: (token ids before masking, MLM probabilities at the masks, layer attentions)."""
    import torch

    import glassbert as gb

    model = gb.BertForPreTraining.from_pretrained(run).eval()
    if snap is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(load_tensor(run, snap, name))
    tok = gb.Tokenizer.from_pretrained(run)
    batch = tok(a, text_pair=b)
    original = batch["input_ids"][0].tolist()
    ids = batch["input_ids"].clone()
    ids[0, masked] = tok.mask_token_id
    with torch.no_grad():
        out = model.bert(ids, batch["token_type_ids"], batch["attention_mask"], output_attentions=True)
        probs = model(ids, batch["token_type_ids"], batch["attention_mask"]).prediction_logits.softmax(-1)
    return original, probs, [t[0].numpy() for t in out.attentions]


def test_live_what_if_equals_the_library(browser, demo_run, tmp_path):
    """Type a pair, click "cat" to mask it: the page shows the model's top words with the library's probabilities
    and the attention the library computes for that input; at an earlier snapshot, that snapshot's weights answer."""
    manifest = load_manifest(demo_run)
    n = len(manifest["snapshots"])
    a, b = "the cat chased the mouse", "it was a fast chase"
    srv = make_server(demo_run).start()
    try:
        page, errors, _ = open_page(browser, srv.url)
        page.locator("#whatif-text").fill(a)
        page.locator("#whatif-pair").fill(b)
        page.locator("#whatif-run").click()
        wait_for(page, lambda: page.locator("#whatif-tokens span.tok").count() == 13, "the what-if tokens")
        assert "the model saved in" in page.locator("#whatif-status").text_content()
        page.locator('#whatif-tokens span.tok[data-pos="2"]').click()  # "cat"
        row = page.locator('#whatif-table tr[data-position="2"]')
        wait_for(page, lambda: row.count() == 1, "the [MASK] prediction")
        original, probs, attentions = library_forward(demo_run, a, b, [2])
        top = probs[0, 2].topk(5)
        assert json.loads(row.get_attribute("data-ids")) == top.indices.tolist()
        np.testing.assert_allclose(json.loads(row.get_attribute("data-probs")), top.values.numpy(), atol=5e-5)
        assert "cat" in row.text_content()  # the actual word of the clicked token
        # every view shows the what-if input: its attention equals the library's
        check = lambda want: np.testing.assert_allclose(np.array(shown_attention(page)["values"]), want, atol=1e-6)
        page.select_option("#layer-select", "1")
        page.select_option("#head-select", "3")
        shown = wait_for(page, lambda: (lambda d: d if d.get("whatif") and d.get("head") == 3 and d.get("layer") == 1 else None)(
            shown_attention(page)), "the what-if attention")
        assert shown["tokens"][2] == "[MASK]" and len(shown["tokens"]) == 13
        check(attentions[1][3])
        assert "what-if input" in page.locator("#attention-title").text_content()
        # an earlier epoch: the weights snapshot 1 recorded answer
        move_slider(page, 1)
        wait_for(page, lambda: "epoch 5" in page.locator("#whatif-status").text_content(), "the what-if at epoch 5")
        _, probs1, attentions1 = library_forward(demo_run, a, b, [2], snap=1)
        np.testing.assert_allclose(json.loads(row.get_attribute("data-probs")), probs1[0, 2].topk(5).values.numpy(), atol=5e-5)
        wait_for(page, lambda: shown_attention(page).get("whatif") and shown_attention(page)["snap"] == 1, "the attention at epoch 5")
        check(attentions1[1][3])
        page.locator("#whatif-panel").screenshot(path=str(tmp_path / "whatif.png"))
        shutil.copy(tmp_path / "whatif.png", "/tmp/explorer-whatif.png")
        page.screenshot(path=str(tmp_path / "whatif-page.png"))
        shutil.copy(tmp_path / "whatif-page.png", "/tmp/explorer-whatif-page.png")
        # a bad input: the server's one-line reason on the page
        page.locator("#whatif-text").fill("the cat " * 10)
        page.locator("#whatif-run").click()
        wait_for(page, lambda: "shorten the text" in page.locator("#whatif-status").text_content(), "the length refusal")
        # back to the recorded samples
        page.locator("#whatif-clear").click()
        wait_for(page, lambda: shown_attention(page).get("whatif") is None, "the recorded sample")
        # the browser logs the refused request's 400 itself; nothing else may be logged
        assert [e for e in errors if "status of 400" not in e] == [], errors
        page.close()
    finally:
        srv.stop()
    # the exported file says what-if needs the server
    out = export_html(demo_run, tmp_path / "demo.html")
    page, errors, _ = open_page(browser, out.as_uri())
    assert "needs the server" in page.locator("#whatif-status").text_content()
    assert page.locator("#whatif-run").is_disabled()
    assert not errors, errors
    page.close()


def test_embedding_projector(browser, demo_run, tmp_path):
    """The token-embedding table in 2-D: one point per token, moving with the slider; the nearest neighbours are
    the recorded table's cosine neighbours; a layer's contextual vectors: one point per real token of each sample."""
    manifest = load_manifest(demo_run)
    n = len(manifest["snapshots"])
    srv = make_server(demo_run).start()
    try:
        page, errors, _ = open_page(browser, srv.url)
        circles = page.locator("#proj-svg circle")
        tokens = [t for t in manifest["vocab"] if t != "[PAD]"]
        wait_for(page, lambda: circles.count() == len(tokens), "the table's points")
        late = circles.evaluate_all("cs => cs.map(c => [Number(c.dataset.x), Number(c.dataset.y)])")
        table = load_tensor(demo_run, n - 1, "bert.embeddings.word_embeddings.weight").numpy()[1:]  # [PAD] is id 0
        first_word = next(i for i, t in enumerate(tokens) if not (t.startswith("[") and t.endswith("]")))
        assert page.locator("#proj-token").input_value() == str(first_word)  # a word's neighbours, not [UNK]'s
        cat = tokens.index("cat")
        page.select_option("#proj-token", str(cat))
        wait_for(page, lambda: page.locator("#proj-nn li").count() == 8, "the neighbours")
        cos = table @ table[cat] / np.linalg.norm(table, axis=1) / np.linalg.norm(table[cat])
        want = [int(i) for i in np.argsort(-cos) if i != cat][:8]
        assert [int(i) for i in page.locator("#proj-nn li").evaluate_all("ls => ls.map(l => l.dataset.i)")] == want
        np.testing.assert_allclose(float(page.locator("#proj-nn li").first.get_attribute("data-cos")), cos[want[0]], atol=1e-4)
        page.locator("#projector-view").screenshot(path=str(tmp_path / "proj.png"))
        shutil.copy(tmp_path / "proj.png", "/tmp/explorer-projector.png")
        move_slider(page, 0)
        wait_for(page, lambda: "epoch 0 " in page.locator("#proj-stats").text_content() + " ", "the projection at epoch 0")
        early = circles.evaluate_all("cs => cs.map(c => [Number(c.dataset.x), Number(c.dataset.y)])")
        assert np.abs(np.array(early) - np.array(late)).max() > 1e-3, "the points move with training"
        page.select_option("#proj-source", label="layer 2 output, per token")
        total = sum(s["length"] for s in manifest["samples"])
        wait_for(page, lambda: circles.count() == total, "one point per real token of every sample")
        page.locator("#projector-view").screenshot(path=str(tmp_path / "proj-ctx.png"))
        shutil.copy(tmp_path / "proj-ctx.png", "/tmp/explorer-projector-layer2.png")
        assert not errors, errors
        page.close()
    finally:
        srv.stop()
