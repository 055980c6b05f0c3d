"""glassbert.search: an index of MiniLM vectors over a small corpus whose nearest neighbours are known (pairs of
near-duplicate sentences), the refusals (another model, another pooling, a changed model, a missing index, an
empty query), the approximate (faiss HNSW) index, the `index` / `search` commands, and /search on a served
model."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import glassbert as gb
from glassbert.cli import main
from glassbert.embed import Embedder
from glassbert.errors import ExistsError, InputError, MissingError
from glassbert.search import HNSW_EF_SEARCH, Hit, Index, build_index, check_queries, hnsw_index
from glassbert.serve import ServeConfig, Server
from glassbert.tokenizer import Tokenizer

# Pairs of near-duplicates: each sentence's nearest other sentence is its partner.
PAIRS = [("The cat sat on the mat.", "A cat was sitting on the mat."),
         ("Stocks fell sharply on Monday.", "The stock market dropped on Monday."),
         ("I love pizza with pineapple.", "Pineapple pizza is my favourite food."),
         ("The train to Paris was late.", "Our train to Paris arrived late."),
         ("She plays the violin beautifully.", "Her violin playing is beautiful."),
         ("It rained all day in London.", "London had rain the whole day.")]
CORPUS = [s for pair in PAIRS for s in pair]
PARTNER = {i: i ^ 1 for i in range(len(CORPUS))}  # rows 2k and 2k+1 are a pair


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("search")


@pytest.fixture(scope="module")
def corpus_file(area) -> Path:
    path = area / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def minilm_index(area, corpus_file, minilm_path) -> Path:
    return build_index(minilm_path, corpus_file, area / "minilm-index")


@pytest.fixture(scope="module")
def approx_index(area, corpus_file, minilm_path) -> Path:
    return build_index(minilm_path, corpus_file, area / "approx-index", approximate=True)


@pytest.fixture(scope="module")
def tiny_model(area, minilm_path) -> Path:
    """A random 2-layer BERT on MiniLM's vocabulary: another model, of another size."""
    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained(minilm_path)
    return gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=tok.vocab_size)).save_pretrained(
        area / "tiny", tokenizer=tok)


# ─── the index and its nearest neighbours ───────────────────────────────────────────────────
def test_the_index_holds_the_embedders_vectors_and_the_texts(minilm_index, minilm_path):
    info = json.loads((minilm_index / "index.json").read_text())
    assert info["count"] == len(CORPUS) and info["dim"] == 384 and info["pooling"] == "mean" and info["normalize"]
    assert info["model_path"] == str(Path(minilm_path).resolve()) and len(info["fingerprint"]) == 16
    index = Index.load(minilm_index)
    assert index.texts == CORPUS
    np.testing.assert_allclose(index.vectors, Embedder(minilm_path).encode(CORPUS), atol=1e-5)
    assert not list(minilm_index.parent.glob(f".{minilm_index.name}*"))  # no temp dir left beside it


@pytest.mark.parametrize("kind", ["minilm_index", "approx_index"])
def test_each_sentence_finds_itself_then_its_near_duplicate(kind, request):
    found = Index.load(request.getfixturevalue(kind)).search(CORPUS, top_k=2)
    for i, (first, second) in enumerate(found):
        assert first == Hit(CORPUS[i], pytest.approx(1.0, abs=1e-5), i)
        assert second.row == PARTNER[i] and second.text == CORPUS[PARTNER[i]]
        assert 0.5 < second.score < first.score


def test_search_is_exact_against_numpy(minilm_index, minilm_path):
    queries = ["a kitten resting on a rug", "share prices went down", "music from a string instrument"]
    index = Index.load(minilm_index)
    found = index.search(queries, top_k=len(CORPUS))  # every row, ranked
    scores = Embedder(minilm_path).encode(queries) @ index.vectors.T
    for row, hits in zip(scores, found):
        assert [h.row for h in hits] == list(np.argsort(-row, kind="stable"))
        np.testing.assert_allclose([h.score for h in hits], np.sort(row)[::-1], atol=1e-5)
    assert {h.row for h in found[0][:2]} == {0, 1} and {h.row for h in found[1][:2]} == {2, 3}
    one = index.search(queries[2], top_k=3)  # one str: its list of hits
    assert [h.row for h in one] == [h.row for h in found[2][:3]] and one[0].row in (8, 9)
    assert [h.score for h in one] == pytest.approx([h.score for h in found[2][:3]], abs=1e-5)
    assert len(index.search("cats", top_k=100)) == len(CORPUS)  # top_k beyond the index: every row


def test_a_table_column_and_cls_pooling(area, minilm_path):
    table = area / "reviews.jsonl"
    table.write_text("".join(json.dumps({"id": i, "review": t}) + "\n" for i, t in enumerate(CORPUS[:4])))
    out = build_index(minilm_path, table, area / "cls-index", pooling="cls", text_column="review")
    index = Index.load(out)
    assert index.texts == CORPUS[:4] and index.pooling == "cls"
    np.testing.assert_allclose(index.vectors, Embedder(minilm_path).encode(CORPUS[:4], pooling="cls"), atol=1e-5)
    assert index.search("a cat on a mat", top_k=1)[0].row in (0, 1)


def test_a_large_input_shows_a_progress_bar(area, tiny_model, capsys):
    build_index(tiny_model, [f"sentence number {i}" for i in range(300)], area / "progress-index", max_length=16)
    assert "embedding" in capsys.readouterr().err


# ─── refusals ───────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("kind", ["minilm_index", "approx_index"])
def test_another_model_or_pooling_is_refused_naming_both(kind, request, minilm_path, tiny_model):
    minilm_index = request.getfixturevalue(kind)
    with pytest.raises(InputError) as e:
        Index.load(minilm_index, model=tiny_model)
    message = str(e.value)
    assert str(Path(minilm_path).resolve()) in message and str(Path(tiny_model).resolve()) in message
    assert "\n" not in message
    with pytest.raises(InputError, match="built with mean pooling, not cls"):
        Index.load(minilm_index, model=minilm_path, pooling="cls")
    Index.load(minilm_index, model=minilm_path, pooling="mean")  # its own: fine


def test_a_model_changed_since_the_index_was_built_is_refused(area, tiny_model, corpus_file, minilm_path):
    import shutil
    model = area / "changing"
    shutil.copytree(tiny_model, model)
    index_dir = build_index(model, corpus_file, area / "changing-index")
    torch.manual_seed(1)
    tok = Tokenizer.from_pretrained(minilm_path)
    gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=tok.vocab_size)).save_pretrained(model, tokenizer=tok)
    with pytest.raises(InputError, match="files have changed since"):
        Index.load(index_dir).search("cats")
    shutil.rmtree(model)
    with pytest.raises(MissingError, match="no longer there"):
        Index.load(index_dir).search("cats")


def test_a_missing_or_broken_index(area, tmp_path, minilm_index):
    with pytest.raises(MissingError, match="no such index"):
        Index.load(tmp_path / "nowhere")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    with pytest.raises(MissingError, match="is not a glassbert index"):
        Index.load(tmp_path / "notes")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("index.json", "vectors.npy"):
        (broken / name).write_bytes((minilm_index / name).read_bytes())
    (broken / "texts.jsonl").write_text('{"text": "only one"}\n')
    with pytest.raises(InputError, match="is damaged"):
        Index.load(broken)


@pytest.mark.parametrize("queries, top_k, fragment", [
    ([""], 3, "query 0 is empty"), (["fine", "   "], 3, "query 1 is empty"), ([], 3, "no query"),
    (["fine"], 0, "top_k must be"), (["fine"], -1, "top_k must be")])
@pytest.mark.parametrize("kind", ["minilm_index", "approx_index"])
def test_bad_queries(kind, request, queries, top_k, fragment):
    index = Index.load(request.getfixturevalue(kind))
    with pytest.raises(InputError, match=fragment):
        index.search(queries, top_k=top_k)
    assert index._embedder is None  # refused before the model loads


@pytest.mark.parametrize("kind", ["minilm_index", "approx_index"])
def test_vectors_of_another_size_are_refused(kind, request):
    with pytest.raises(InputError, match="size 128"):
        Index.load(request.getfixturevalue(kind)).search_vectors(np.zeros((1, 128), np.float32))


# ─── the approximate index ──────────────────────────────────────────────────────────────────
def test_the_approximate_index_is_a_graph_beside_the_same_vectors(approx_index, minilm_index):
    info = json.loads((approx_index / "index.json").read_text())
    assert info["approximate"]["kind"] == "faiss-hnsw" and (approx_index / "hnsw.faiss").is_file()
    exact, approximate = Index.load(minilm_index), Index.load(approx_index)
    assert exact.graph is None and approximate.graph is not None
    np.testing.assert_array_equal(exact.vectors, approximate.vectors)
    queries = ["a kitten resting on a rug", "share prices went down", "music from a string instrument"]
    for a, b in zip(exact.search(queries, top_k=3), approximate.search(queries, top_k=3)):
        assert [h.row for h in a] == [h.row for h in b]  # 12 rows: the graph reaches every one
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    assert len(approximate.search("cats", top_k=100)) == len(CORPUS)  # top_k beyond the index: every row


def test_the_approximate_recall_at_10_against_exact(tmp_path):
    """2,000 random unit vectors (the worst case: no structure for the graph to use) and 200 queries: the
    graph's top 10 holds at least 90% of the exact top 10 with the chosen efSearch."""
    rng = np.random.default_rng(0)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    vectors, queries = unit(rng.standard_normal((2000, 384))), unit(rng.standard_normal((200, 384)))
    texts = [f"text {i}" for i in range(len(vectors))]
    info = {"count": len(vectors), "dim": 384, "model_path": "none", "approximate": {"ef_search": HNSW_EF_SEARCH}}
    exact = Index(tmp_path, vectors, texts, info).search_vectors(queries, 10)
    approximate = Index(tmp_path, vectors, texts, info, hnsw_index(vectors)).search_vectors(queries, 10)
    recall = np.mean([len({h.row for h in a} & {h.row for h in e}) / 10 for a, e in zip(approximate, exact)])
    assert recall >= 0.9, recall


def test_a_damaged_graph_is_refused(tmp_path, approx_index):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(approx_index, broken)
    (broken / "hnsw.faiss").write_bytes(b"not a graph")
    with pytest.raises(InputError, match="is damaged .*hnsw.faiss"):
        Index.load(broken)
    (broken / "hnsw.faiss").unlink()
    with pytest.raises(InputError, match="is damaged .*hnsw.faiss"):
        Index.load(broken)


def test_without_faiss_approximate_says_how_to_install_it(monkeypatch, tiny_model, tmp_path, approx_index):
    import sys
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss → ImportError
    with pytest.raises(InputError, match=r"pip install 'glassbert\[search\]'") as e:
        build_index(tiny_model, ["one", "two"], tmp_path / "idx", approximate=True)
    assert "\n" not in str(e.value) and not (tmp_path / "idx").exists()
    result = CliRunner().invoke(main, ["index", str(tiny_model), "--input", __file__, "--out", str(tmp_path / "c"),
                                       "--approximate"])
    assert result.exit_code == 1 and "faiss-cpu" in result.output and len(result.output.splitlines()) == 1
    with pytest.raises(InputError, match="needs faiss-cpu"):
        Index.load(approx_index)


def test_an_approximate_index_needs_unit_vectors(tiny_model, tmp_path):
    with pytest.raises(InputError, match="unit vectors"):
        build_index(tiny_model, ["one", "two"], tmp_path / "idx", approximate=True, normalize=False)


def test_an_existing_target_is_refused_unless_overwrite(area, tiny_model, tmp_path):
    out = build_index(tiny_model, ["one", "two"], tmp_path / "idx")
    with pytest.raises(ExistsError, match="already holds files"):
        build_index(tiny_model, ["three"], out)
    build_index(tiny_model, ["three"], out, overwrite=True)
    assert Index.load(out).texts == ["three"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="did not write"):
        build_index(tiny_model, ["three"], mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "precious"
    with pytest.raises(InputError, match="no texts"):
        build_index(tiny_model, [], tmp_path / "empty")


# ─── the commands ───────────────────────────────────────────────────────────────────────────
def test_index_then_search_on_the_command_line(area, corpus_file, minilm_path, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli-index"
    result = runner.invoke(main, ["index", str(minilm_path), "--input", str(corpus_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote an index of {len(CORPUS)} texts × 384" in result.output
    result = runner.invoke(main, ["search", str(out), "a kitten on a rug", "share prices went down", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "a kitten on a rug" and "[0]" in result.output and CORPUS[1] in result.output
    assert len(lines) == 6  # per query: itself, then 2 hits
    results = tmp_path / "results.jsonl"
    result = runner.invoke(main, ["search", str(out), CORPUS[4], "--top-k", "2", "--out", str(results)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["query"], r["rank"], r["index"], r["text"]) for r in rows] == [
        (CORPUS[4], 1, 4, CORPUS[4]), (CORPUS[4], 2, 5, CORPUS[5])]
    result = runner.invoke(main, ["search", str(out), "x", "--out", str(results)])  # exists: refused
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(main, ["index", str(minilm_path), "--input", str(corpus_file), "--out", str(out),
                                  "--overwrite", "--approximate"])
    assert result.exit_code == 0 and "wrote an approximate (HNSW) index of 12 texts" in result.output, result.output
    result = runner.invoke(main, ["search", str(out), CORPUS[4], "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert [line.split()[2] for line in result.output.splitlines()[1:]] == ["[4]", "[5]"]


# ─── /search on the server ──────────────────────────────────────────────────────────────────
def post(url: str, body) -> tuple[int, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_search_over_http_equals_the_library(minilm_index, minilm_path):
    server = Server(minilm_path, port=0, config=ServeConfig(index=str(minilm_index), workers=1)).start()
    try:
        library = Index.load(minilm_index).search(["a kitten on a rug", CORPUS[6]], top_k=3)
        status, answer = post(server.url + "/search", {"inputs": ["a kitten on a rug", CORPUS[6]], "top_k": 3})
        assert status == 200
        assert [[(h["index"], h["text"]) for h in hits] for hits in answer] == \
            [[(h.row, h.text) for h in hits] for hits in library]
        np.testing.assert_allclose([[h["score"] for h in hits] for hits in answer],
                                   [[h.score for h in hits] for hits in library], atol=1e-5)
        status, one = post(server.url + "/search", {"inputs": CORPUS[3]})  # a string; top_k 10 by default
        assert status == 200 and len(one) == 1 and len(one[0]) == 10 and one[0][0]["index"] == 3
        for body, fragment in (({"inputs": ""}, "query 0 is empty"), ({"inputs": []}, "empty list"),
                               ({"inputs": "x", "top_k": 0}, "top_k")):
            status, error = post(server.url + "/search", body)
            assert status == 422 and fragment in error["error"], error
        with urllib.request.urlopen(server.url + "/info", timeout=60) as r:
            assert "/search" in json.loads(r.read())["endpoints"]
    finally:
        server.stop()


def test_a_server_without_an_index_answers_400(minilm_path):
    server = Server(minilm_path, port=0, config=ServeConfig(workers=1)).start()
    try:
        status, error = post(server.url + "/search", {"inputs": "cats"})
        assert status == 400 and "--index" in error["error"] and error["error_type"] == "unsupported"
    finally:
        server.stop()


def test_a_server_refuses_an_index_of_another_model_at_start(minilm_index, tiny_model, minilm_path):
    with pytest.raises(InputError, match="not with"):
        Server(tiny_model, port=0, config=ServeConfig(index=str(minilm_index)))
    with pytest.raises(InputError, match="pooling"):
        Server(minilm_path, port=0, config=ServeConfig(index=str(minilm_index), pooling="cls"))
    with pytest.raises(MissingError, match="no such index"):
        Server(minilm_path, port=0, config=ServeConfig(index="/nonexistent/index"))


def test_check_queries():
    assert check_queries(["a", "b"]) == ["a", "b"]
    with pytest.raises(InputError, match="UTF-8"):
        check_queries(["caf\udce9"])
