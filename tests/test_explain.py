"""Attribution (glassbert.explain): completeness against the model's own outputs, every target kind, bad
targets, the terminal and PNG renderings; on a classifier trained on the synthetic sentiment set, the
sentiment word carries the label."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import glassbert as gb
from glassbert import synthetic as S
from glassbert.errors import ExistsError, InputError
from glassbert.explain import Explainer, Explanation, Target, explain, plot, render_terminal, write_json

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "the cat chased mouse a dog ran fast it was john smith lives in paris where does live ? .".split()
TAGS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"}


@pytest.fixture(scope="module")
def tok() -> gb.Tokenizer:
    return gb.Tokenizer.from_vocab(SPECIALS + WORDS)


def toy(cls, tok, seed: int = 0, **overrides):
    """A random toy-sized model; initializer_range 0.5 so that its outputs differ enough between the input
    and the baseline for completeness to mean something."""
    torch.manual_seed(seed)
    config = gb.BertConfig.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=32,
                                  initializer_range=0.5, **overrides)
    return cls(config).eval()


def independent(model, tok, text, pair, head, positions_zero=False, segments_zero=False):
    """The model's own probabilities on the text and on its baseline ([PAD] for all but [CLS]/[SEP]/[MASK]),
    by a plain forward pass (no hooks): what the attributions must add up to."""
    b = tok(text, pair)
    ids, tt = b["input_ids"], b["token_type_ids"]
    keep = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (ids == tok.mask_token_id)
    base = torch.where(keep, ids, torch.full_like(ids, tok.pad_token_id))
    emb = model.bert.embeddings
    saved = emb.position_ids
    with torch.no_grad():
        p_input = head(model(input_ids=ids, token_type_ids=tt))
        if positions_zero:
            emb.position_ids = torch.zeros_like(saved)
        try:
            p_base = head(model(input_ids=base, token_type_ids=torch.zeros_like(tt) if segments_zero else tt))
        finally:
            emb.position_ids = saved
    return p_input, p_base


def label_prob(index):
    return lambda out: float(torch.softmax(out.logits, -1)[0, index])


# ─── completeness ───────────────────────────────────────────────────────────────────────────
def test_ig_attributions_sum_to_the_models_own_difference_within_delta(tok):
    model = toy(gb.BertForSequenceClassification, tok, id2label={0: "neg", 1: "pos"})
    text = "the cat chased the mouse ."
    r = Explainer(model, tok).explain(text, target="pos")
    p_input, p_base = independent(model, tok, text, None, label_prob(1))
    assert r.probability == pytest.approx(p_input, abs=1e-6)
    assert r.baseline_probability == pytest.approx(p_base, abs=1e-6)
    assert abs(p_input - p_base) > 0.05  # something to explain
    assert r.converged and abs(r.delta) <= r.tolerance
    assert abs(sum(r.attributions) - (p_input - p_base)) <= abs(r.delta) + 1e-6
    assert len(r.attributions) == len(r.tokens) == 8 and r.steps >= 16


def test_conductance_rows_each_sum_to_the_difference_from_the_embedding_output(tok):
    """Every layer's row sums to f(input) − f(baseline) of the *plain* model: the forward Captum sees starts
    at the embedding output and does not add positions, segments and LayerNorm again (Captum issue #506)."""
    model = toy(gb.BertForSequenceClassification, tok, id2label={0: "neg", 1: "pos"})
    text = "the cat chased the mouse ."
    r = Explainer(model, tok).explain(text, target="neg", method="conductance")
    p_input, p_base = independent(model, tok, text, None, label_prob(0))
    assert len(r.layers) == model.config.num_hidden_layers and all(len(row) == len(r.tokens) for row in r.layers)
    assert len(r.layer_deltas) == len(r.layer_steps) == len(r.layers)
    for row, delta in zip(r.layers, r.layer_deltas):
        assert abs(sum(row) - (p_input - p_base)) <= abs(delta) + 1e-6
        assert abs(delta) <= r.tolerance
    assert r.delta == max(r.layer_deltas, key=abs) and r.attributions is None


def test_parts_sum_to_the_difference_from_pad_position_0_segment_0(tok):
    model = toy(gb.BertForNextSentencePrediction, tok)
    text, pair = "the cat chased the mouse .", "it ran fast ."
    r = Explainer(model, tok).explain(text, pair, target="IsNext", parts=True)
    nsp = lambda out: float(torch.softmax(out.seq_relationship_logits, -1)[0, 0])  # noqa: E731
    p_input, p_base = independent(model, tok, text, pair, nsp, positions_zero=True, segments_zero=True)
    p = r.parts
    assert p.baseline_probability == pytest.approx(p_base, abs=1e-6)
    total = sum(p.word) + sum(p.position) + sum(p.segment)
    assert abs(total - (p_input - p_base)) <= abs(p.delta) + 1e-6
    assert any(abs(v) > 0 for v in p.segment[-5:])  # the pair's segment 1 differs from the baseline's 0
    assert all(v == 0 for v in p.word[:1]) and p.word[0] == 0  # [CLS] is kept in the baseline


# ─── every target kind ──────────────────────────────────────────────────────────────────────
KINDS = [
    (gb.BertForSequenceClassification, {"id2label": {0: "neg", 1: "pos"}}, "the cat ran .", None, None,
     "label", "label '{pred}'"),
    (gb.BertForSequenceClassification, {"id2label": {0: "neg", 1: "pos"}}, "the cat ran .", None, "1",
     "label", "label 'pos'"),
    (gb.BertForMaskedLM, {}, "the cat [MASK] the mouse .", None, "chased", "word", "word 'chased' at [MASK] position 3"),
    (gb.BertForMaskedLM, {}, "the [MASK] chased the [MASK] .", None, "@5", "word", "word '{pred}' at [MASK] position 5"),
    (gb.BertForPreTraining, {}, "the cat [MASK] the mouse .", "it ran fast .", None, "word", "word '{pred}' at [MASK] position 3"),
    (gb.BertForPreTraining, {}, "the cat chased the mouse .", "it ran fast .", "notnext", "nsp", "NSP 'NotNext'"),
    (gb.BertForPreTraining, {}, "the cat chased the mouse .", "it ran fast .", None, "nsp", "NSP '{pred}'"),
    (gb.BertForNextSentencePrediction, {}, "the cat ran .", "it was fast .", "IsNext", "nsp", "NSP 'IsNext'"),
    (gb.BertForTokenClassification, {"id2label": TAGS}, "john smith lives in paris .", None, "B-LOC@5", "tag",
     "tag 'B-LOC' at position 5 ('paris')"),
    (gb.BertForTokenClassification, {"id2label": TAGS}, "john smith lives in paris .", None, "@2", "tag",
     "tag '{pred}' at position 2 ('smith')"),
    (gb.BertForQuestionAnswering, {}, "where does john live ?", "john lives in paris .", "end@10", "end",
     "answer end at position 10 ('paris')"),
    (gb.BertForQuestionAnswering, {}, "where does john live ?", "john lives in paris .", None, "start",
     "answer start at position {pred}"),
]


@pytest.mark.parametrize("cls, overrides, text, pair, target, kind, described", KINDS)
def test_each_target_kind(tok, cls, overrides, text, pair, target, kind, described):
    model = toy(cls, tok, **overrides)
    r = Explainer(model, tok).explain(text, pair, target)
    assert r.target_kind == kind
    pred = r.prediction.split(" ")[0] if kind in ("start", "end") else r.prediction
    assert r.target.startswith(described.format(pred=pred))
    if target is None or target.startswith("@"):  # the default: what the model predicts
        assert r.probability == pytest.approx(r.predicted_probability)
    assert abs(sum(r.attributions) - r.difference) <= abs(r.delta) + 1e-6
    assert 0 <= r.probability <= 1 and 0 <= r.baseline_probability <= 1


def test_conductance_on_an_mlm_target_reads_the_masked_row_only(tok):
    model = toy(gb.BertForMaskedLM, tok)
    r = Explainer(model, tok).explain("the cat [MASK] the mouse .", target="mouse@3", method="conductance")
    assert r.target == "word 'mouse' at [MASK] position 3"
    with torch.no_grad():
        b = tok("the cat [MASK] the mouse .")
        p = torch.softmax(model(**b).prediction_logits[0, 3], -1)[tok.vocab["mouse"]]
    assert r.probability == pytest.approx(float(p), abs=1e-6)
    assert all(abs(sum(row) - r.difference) <= abs(d) + 1e-6 for row, d in zip(r.layers, r.layer_deltas))


# ─── bad input ──────────────────────────────────────────────────────────────────────────────
BAD = [
    (gb.BertForMaskedLM, {}, "the cat chased the mouse .", None, None, "has no \\[MASK\\]"),
    (gb.BertForMaskedLM, {}, "the cat [MASK] the mouse .", None, "cat@2", "position 2 holds 'cat', not \\[MASK\\]"),
    (gb.BertForMaskedLM, {}, "the cat [MASK] the mouse .", None, "cat@99", "position 99 is out of range: the text has 8"),
    (gb.BertForMaskedLM, {}, "the cat [MASK] .", None, "zebra", "word 'zebra' is not in the model's vocabulary"),
    (gb.BertForSequenceClassification, {"id2label": {0: "neg", 1: "pos"}}, "the cat", None, "happy",
     "unknown label 'happy': this classifier's labels are neg, pos"),
    (gb.BertForSequenceClassification, {"id2label": {0: "neg", 1: "pos"}}, "the cat", None, "7",
     "label index 7 is out of range: this classifier has 2 labels"),
    (gb.BertForSequenceClassification, {"id2label": {0: "neg", 1: "pos"}}, "the cat", None, "pos@1",
     "labels the whole text"),
    (gb.BertForNextSentencePrediction, {}, "the cat", "it ran", "maybe", "unknown NSP label 'maybe'"),
    (gb.BertForQuestionAnswering, {}, "where", "paris", "middle", "the answer's start or end"),
    (gb.BertForTokenClassification, {"id2label": TAGS}, "john smith", None, "B-CITY@1", "unknown tag 'B-CITY'"),
    (gb.BertModel, {}, "the cat", None, None, "no head to explain"),
]


@pytest.mark.parametrize("cls, overrides, text, pair, target, message", BAD)
def test_bad_targets_are_one_line_input_errors(tok, cls, overrides, text, pair, target, message):
    with pytest.raises(InputError, match=message) as err:
        Explainer(toy(cls, tok, **overrides), tok).explain(text, pair, target)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "shap"}, "method 'shap': choose one of ig, conductance"),
    ({"steps": 1}, "steps must be an integer >= 2"),
    ({"parts": True, "method": "conductance"}, "use method 'ig'"),
])
def test_bad_options(tok, kwargs, message):
    model = toy(gb.BertForSequenceClassification, tok)
    with pytest.raises(InputError, match=re.escape(message)):
        Explainer(model, tok).explain("the cat", **kwargs)


def test_target_grammar():
    assert Target.parse("positive") == Target("positive")
    assert Target.parse("B-PER@3") == Target("B-PER", 3)
    assert Target.parse("@4") == Target(None, 4)
    assert Target.parse("user@host") == Target("user@host")  # '@' not followed by digits is part of the name
    assert Target.parse(None) == Target() == Target.parse("  ")
    assert Target.parse(1) == Target("1")
    assert str(Target("end", 12)) == "end@12"


def test_given_steps_are_used_and_a_delta_above_tolerance_is_said(tok):
    model = toy(gb.BertForSequenceClassification, tok, id2label={0: "neg", 1: "pos"})
    explainer = Explainer(model, tok, tolerance=1e-9)
    r = explainer.explain("the cat chased the mouse .", target="pos", steps=2)
    assert r.steps == 2 and not r.converged
    assert any("above the tolerance" in note for note in r.notes)
    assert "note: |delta|" in render_terminal(r)


# ─── outputs ────────────────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def results(tok) -> tuple[Explanation, Explanation]:
    model = toy(gb.BertForSequenceClassification, tok, id2label={0: "neg", 1: "pos"})
    explainer = Explainer(model, tok)
    return (explainer.explain("the cat chased the mouse .", target="pos", parts=True),
            explainer.explain("the cat chased the mouse .", target="pos", method="conductance"))


def test_render_terminal_plain_and_coloured(results):
    ig, lc = results
    plain = render_terminal(ig, color=False, width=200)
    assert "\x1b[" not in plain
    assert "target: label 'pos'" in plain and f"after {ig.steps} steps" in plain
    for tok, value in zip(ig.tokens, ig.attributions):
        assert re.search(re.escape(tok) + r"\([+-]\d\.\d+\)", plain)
    assert "per sub-embedding" in plain and "position" in plain
    coloured = render_terminal(ig, color=True, width=200)
    assert "\x1b[48;5;" in coloured and coloured.count("\x1b[0m") >= 1
    table = render_terminal(lc, color=False).splitlines()
    header = next(line for line in table if line.strip().startswith("#"))
    assert header.split()[-2:] == ["L1", "L2"]
    assert len([line for line in table if re.match(r"\s+\d+ ", line)]) == len(lc.tokens)


def test_plot_writes_png_and_refuses_an_existing_file(results, tmp_path):
    ig, lc = results
    for name, what in (("ig.png", ig), ("lc.png", lc), ("both.png", [ig, lc])):
        out = plot(what, tmp_path / name)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ExistsError, match="--png .*ig.png already exists"):
        plot(ig, tmp_path / "ig.png")
    plot(ig, tmp_path / "ig.png", overwrite=True)


def test_json_holds_every_number(results, tmp_path):
    ig, lc = results
    path = write_json([ig, lc], tmp_path / "out.json")
    data = json.loads(path.read_text())
    assert [d["method"] for d in data] == ["ig", "conductance"]
    assert data[0]["attributions"] == pytest.approx(ig.attributions)
    assert data[0]["parts"]["word"] == pytest.approx(ig.parts.word)
    assert data[1]["layers"] == [pytest.approx(row) for row in lc.layers]
    assert data[0]["tokens"] == ig.tokens and data[0]["target"] == "label 'pos'"
    with pytest.raises(ExistsError):
        write_json(ig, path)


def test_explain_loads_a_model_directory(tok, tmp_path):
    model = toy(gb.BertForSequenceClassification, tok, id2label={0: "neg", 1: "pos"})
    directory = model.save_pretrained(tmp_path / "clf", tokenizer=tok)
    out = explain(directory, ["the cat ran .", "a dog ran fast ."], target="neg", method="conductance", steps=8)
    assert [r.text for r in out] == ["the cat ran .", "a dog ran fast ."]
    assert all(r.target == "label 'neg'" and r.steps == 8 and len(r.layers) == 2 for r in out)
    with pytest.raises(InputError, match="2 texts but 3 pairs"):
        explain(directory, ["a", "b"], pair=["x", "y", "z"])
    with pytest.raises(InputError, match="no texts to explain"):
        explain(directory, [])


# ─── a classifier that learned the synthetic sentiment set ──────────────────────────────────
@pytest.mark.slow
def test_the_sentiment_word_carries_the_label():
    rows = S.make_sentiment(400, 1)
    tok = gb.Tokenizer.from_vocab(SPECIALS + sorted({w for t, _ in rows for w in t.split()}))
    torch.manual_seed(0)
    config = gb.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, id2label={0: "negative", 1: "positive"})
    model = gb.BertForSequenceClassification(config)
    batch = tok([t for t, _ in rows])
    labels = torch.tensor([int(label == "positive") for _, label in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        pick = torch.randint(0, len(rows), (32,), generator=generator)
        loss = model(**{k: v[pick] for k, v in batch.items()}, labels=labels[pick]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()

    explainer = Explainer(model, tok)
    plain = [(t, label) for t, label in S.make_sentiment(40, 2) if " not " not in t][:8]
    moved = 0
    for text, label in plain:
        r = explainer.explain(text)
        assert r.prediction == label
        real = range(1, len(r.tokens) - 1)
        top = max(real, key=lambda i: abs(r.attributions[i]))
        assert r.tokens[top] in S.POSITIVE + S.NEGATIVE, (text, r.tokens[top])
        if abs(r.difference) > 0.5:  # the baseline leans the other way: the sentiment word moves it
            moved += 1
            assert r.attributions[top] > 0.5 * r.difference
            if moved <= 2:
                first = explainer.explain(text, method="conductance").layers[0]
                assert max(real, key=lambda i: first[i]) == top  # layer 1: the word's own position carries it
    assert moved >= 2


# ─── batches ────────────────────────────────────────────────────────────────────────────────
def test_a_padded_batch_equals_each_text_alone(tok):
    """Texts of different lengths run as one padded batch (the model's padded path, a row per text, a token
    per row for a tagger); each result equals that text explained alone."""
    model = toy(gb.BertForTokenClassification, tok, id2label=TAGS)
    explainer = Explainer(model, tok)
    texts = ["john smith lives in paris .", "the cat ran .", "where does the dog live ?"]
    for method in ("ig", "conductance"):
        together = explainer.explain_texts(texts, target="@2", method=method, steps=16)
        for text, r in zip(texts, together):
            alone = explainer.explain(text, target="@2", method=method, steps=16)
            assert r.tokens == alone.tokens and r.target == alone.target
            assert r.probability == pytest.approx(alone.probability, abs=1e-5)
            if method == "ig":
                assert r.attributions == pytest.approx(alone.attributions, abs=1e-5)
            else:
                assert [pytest.approx(row, abs=1e-5) for row in alone.layers] == r.layers


def test_a_batch_of_mixed_heads_and_a_bad_target(tok):
    from glassbert.explain import Item

    model = toy(gb.BertForPreTraining, tok)
    explainer = Explainer(model, tok)
    masked = tok("the cat [MASK] the mouse .", "it ran fast .")
    plain = tok("the cat chased the mouse .", "it ran fast .")
    items = [Item(masked["input_ids"][0].tolist(), masked["token_type_ids"][0].tolist(), "chased"),
             Item(plain["input_ids"][0].tolist(), plain["token_type_ids"][0].tolist(), "IsNext"),
             Item(plain["input_ids"][0].tolist(), plain["token_type_ids"][0].tolist(), "cat@2"),
             Item(masked["input_ids"][0].tolist(), masked["token_type_ids"][0].tolist(), "NotNext")]
    word, nsp, bad, nsp2 = explainer.explain_batch(items, errors="return")
    assert word.target == "word 'chased' at [MASK] position 3" and nsp.target == "NSP 'IsNext'"
    assert isinstance(bad, InputError) and "has no [MASK]" in str(bad)
    assert nsp2.target == "NSP 'NotNext'"
    for r in (word, nsp, nsp2):
        assert abs(sum(r.attributions) - r.difference) <= abs(r.delta) + 1e-6
    with pytest.raises(InputError, match="has no \\[MASK\\]"):
        explainer.explain_batch(items)


# ─── the heads a model declares ─────────────────────────────────────────────────────────────
# per model class, the heads explain offers (label, tag, word, nsp/sop, span): what users can target
EXPLAINABLE = {
    "BertModel": [], "BertForPreTraining": ["word", "nsp"], "BertForMaskedLM": ["word"],
    "BertForNextSentencePrediction": ["nsp"], "BertForSequenceClassification": ["label"],
    "BertForTokenClassification": ["tag"], "BertForQuestionAnswering": ["span"],
    "AlbertModel": [], "AlbertForPreTraining": ["word", "sop"], "AlbertForMaskedLM": ["word"],
    "AlbertForSequenceClassification": ["label"], "AlbertForTokenClassification": ["tag"],
    "AlbertForQuestionAnswering": ["span"],
}


def model_classes() -> list[type]:
    """Every BERT and ALBERT model class glassbert defines (the bare encoders too, not the shared bases)."""
    import glassbert.albert  # noqa: F401  (its classes subclass BertPreTrainedModel)
    from glassbert.pretrained import BertPreTrainedModel

    found, todo = {}, [BertPreTrainedModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("glassbert.") and not sub.__name__.endswith("PreTrainedModel"):
                found[sub.__name__] = sub
    return list(found.values())


def heads_from_output(model, out) -> list[str]:
    """The heads as explain read them before models declared theirs: from the output's attributes."""
    heads = []
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        heads.append("label" if logits.dim() == 2 else "tag")
    if isinstance(getattr(out, "prediction_logits", None), torch.Tensor):
        heads.append("word")
    if isinstance(getattr(out, "sop_logits", None), torch.Tensor):
        heads.append("sop")
    elif isinstance(getattr(out, "seq_relationship_logits", None), torch.Tensor):
        heads.append("sop" if hasattr(model, "sop_classifier") else "nsp")
    if isinstance(getattr(out, "start_logits", None), torch.Tensor):
        heads.append("span")
    return heads


def test_each_model_class_offers_the_targets_of_the_heads_it_declares(tok):
    from glassbert.explain.targets import HEAD_TARGETS, explainable_heads
    from glassbert.pretrained import HEAD_KINDS

    classes = model_classes()
    assert set(EXPLAINABLE) <= {cls.__name__ for cls in classes}
    assert set(HEAD_TARGETS) == set(HEAD_KINDS)
    ids = tok("the cat [MASK] the mouse .", "it ran fast .")
    for cls in classes:
        assert set(cls.heads) <= set(HEAD_KINDS), cls.__name__
        torch.manual_seed(0)
        config = cls.config_class.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=32)
        model = cls(config).eval()
        with torch.no_grad():
            out = model(input_ids=ids["input_ids"], token_type_ids=ids["token_type_ids"])
        assert explainable_heads(model) == heads_from_output(model, out), cls.__name__  # as before
        if cls.__name__ in EXPLAINABLE:
            assert explainable_heads(model) == EXPLAINABLE[cls.__name__]


def test_explain_asks_the_model_which_heads_it_has(tok):
    """The heads come from ``model.heads``, not from what the output happens to hold."""
    model = toy(gb.BertForPreTraining, tok)
    text, pair = "the cat chased the mouse .", "it ran fast ."
    assert Explainer(model, tok).explain(text, pair, "IsNext", steps=4).target_kind == "nsp"
    model.heads = ("mlm",)  # the NSP logits are still in the output, but the model no longer declares them
    with pytest.raises(InputError, match=r"the text has no \[MASK\]: an MLM target"):
        Explainer(model, tok).explain(text, pair, "IsNext", steps=4)
    model.heads = ()
    with pytest.raises(InputError, match="BertForPreTraining has no head to explain"):
        Explainer(model, tok).explain(text, pair, steps=4)


# ─── ALBERT ─────────────────────────────────────────────────────────────────────────────────
def test_albert_sop_by_integrated_gradients_and_conductance_refused(tok):
    from glassbert.albert import AlbertForPreTraining
    from glassbert.config import AlbertConfig

    torch.manual_seed(0)
    config = AlbertConfig.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=32, initializer_range=0.5)
    explainer = Explainer(AlbertForPreTraining(config).eval(), tok)
    r = explainer.explain("the cat chased the mouse .", "it ran fast .", target="swapped")
    assert r.target == "SOP 'Swapped'" and r.target_kind == "sop" and r.prediction in ("InOrder", "Swapped")
    assert abs(sum(r.attributions) - r.difference) <= abs(r.delta) + 1e-6
    assert explainer.explain("the cat [MASK] the mouse .", "it ran fast .").target_kind == "word"
    with pytest.raises(InputError, match=r"shares one module among its layers\): use method 'ig'"):
        explainer.explain("the cat ran .", "it ran", method="conductance")


# ─── the command ────────────────────────────────────────────────────────────────────────────
def test_the_explain_command_prints_writes_and_refuses(tok, tmp_path):
    from click.testing import CliRunner

    from glassbert.cli import main
    model = toy(gb.BertForSequenceClassification, tok, id2label={0: "neg", 1: "pos"})
    directory = str(model.save_pretrained(tmp_path / "clf", tokenizer=tok))
    png, js = tmp_path / "why.png", tmp_path / "why.json"

    def run(*args):
        return CliRunner().invoke(main, ["explain", directory, *args])

    result = run("the cat ran .", "a dog ran fast .", "--target", "pos", "--steps", "8", "--png", str(png),
                 "--json", str(js), "--no-color")
    assert result.exit_code == 0, result.output
    assert result.output.count("target: label 'pos'") == 2 and "the(" in result.output  # plain: token(value)
    assert "\x1b[" not in result.output
    assert png.read_bytes()[:4] == b"\x89PNG" and [r["text"] for r in json.loads(js.read_text())] == \
        ["the cat ran .", "a dog ran fast ."]
    # an existing output is refused before any work; --overwrite replaces it
    again = run("the cat ran .", "--png", str(png))
    assert again.exit_code != 0 and "--overwrite" in again.output and "Traceback" not in again.output
    assert run("the cat ran .", "--method", "conductance", "--steps", "8", "--png", str(png),
               "--overwrite").exit_code == 0
    coloured = run("the cat ran .", "--steps", "8", "--color")
    assert "\x1b[48;5;" in coloured.output
    for args, message in [(("the cat ran .", "--target", "maybe"), "unknown label 'maybe'"),
                          (("a", "b", "--pair", "x", "--pair", "y", "--pair", "z"), "2 texts but 3 --pair"),
                          (("the cat ran .", "--method", "conductance", "--parts"), "--parts splits"),
                          (("the cat ran .", "--png", str(tmp_path / "why.jpg")), "give a .png")]:
        bad = run(*args)
        assert bad.exit_code != 0 and message in bad.output and "Traceback" not in bad.output, bad.output


def test_outputs_go_into_a_folder_that_does_not_exist_yet(results, tmp_path):
    png, js = tmp_path / "new" / "why.png", tmp_path / "other" / "deeper" / "why.json"
    plot(results, png)
    write_json(results, js)
    assert png.read_bytes()[:4] == b"\x89PNG" and json.loads(js.read_text())
    assert sorted(p.name for p in png.parent.iterdir()) == ["why.png"]  # no temporary file left beside it
