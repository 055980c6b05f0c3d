"""The catalogue of capture points: every tap is declared in its module's table, every declared point is
tapped (or derived from one that is), on every task model (BERT and ALBERT) and both attention paths."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from glassbert.capture import Capture, Point, Points, UndeclaredTap, catalogue, points_of, tap
from glassbert.config import AlbertConfig, BertConfig
from glassbert.registry import TASK_MODELS
from glassbert.tokenizer import IGNORE_INDEX


def _inputs(name: str, vocab: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(5, vocab, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding: the fast path unpads
    batch = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}
    task = name.removeprefix("Albert").removeprefix("Bert")  # ForPreTraining, ForMaskedLM, …
    if task in ("ForPreTraining", "ForMaskedLM"):
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, 2] = ids[:, 2]
        batch["labels"] = labels
    if name in ("BertForPreTraining", "BertForNextSentencePrediction"):
        batch["next_sentence_label"] = torch.tensor([0, 1])
    if name == "AlbertForPreTraining":
        batch["sentence_order_label"] = torch.tensor([0, 1])
    if task == "ForSequenceClassification":
        batch["labels"] = torch.tensor([0, 1])
    if task == "ForTokenClassification":
        batch["labels"] = torch.zeros_like(ids)
    if task == "ForQuestionAnswering":
        batch.update(start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    return batch


def _toy(cls: type, **overrides):
    """The toy config of ``cls``'s architecture; ALBERT's with two layer groups of two inner layers each."""
    extra = dict(num_hidden_groups=2, inner_group_num=2) if cls.config_class is AlbertConfig else {}
    return cls.config_class.preset("toy", vocab_size=40, **extra, **overrides)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_every_tap_is_declared_and_every_declared_point_is_tapped(attn):
    declared: dict[tuple[type, str], Point] = {}
    seen: set[tuple[type, str]] = set()
    for name, cls in TASK_MODELS.items():
        cfg = _toy(cls, num_labels=3, attn_implementation=attn)
        model = cls(cfg).eval()
        modules = dict(model.named_modules())
        for module in modules.values():
            table = points_of(module)
            for point in table.points if table is not None else ():
                declared[(type(module), point.name)] = point
        for explicit in (True, False):  # explicit: every step; fast: only the taps outside the encoder
            with torch.no_grad(), Capture(model, explicit=explicit) as cap:  # an undeclared tap raises
                model(**_inputs(name, cfg.vocab_size))
            assert cap.records, f"{name}: nothing was tapped"
            for key, point in cap.points.items():
                owner = cap.owners[key]
                assert points_of(owner)[point.name] is point
                seen.add((type(owner), point.name))
    derived = {k for k, p in declared.items() if p.derive is not None}
    for (owner, point_name), point in declared.items():
        if point.derive is not None:
            assert (owner, point.derive[1]) in seen, f"{owner.__name__}.{point_name} derives from an untapped point"
    never = sorted(f"{owner.__name__}.{n}" for (owner, n) in set(declared) - seen - derived)
    assert not never, f"declared in a capture table but never tapped: {never}"


def test_an_undeclared_tap_is_an_error_naming_the_table():
    class Odd(nn.Module):
        capture = Points("Odd", [Point("known", ("hidden",), "a known point")])

        def forward(self, x):
            tap(self, "known", x)
            return tap(self, "unknown", x * 2)

    m = Odd()
    m(torch.ones(3))  # nothing listens: taps cost nothing and check nothing
    with pytest.raises(UndeclaredTap, match=r"Odd taps 'unknown'.*Odd\.capture"):
        with Capture(m):
            m(torch.ones(3))


def test_the_catalogue_lists_every_point_with_its_explorer_facts():
    cfg = BertConfig.preset("toy", vocab_size=40)
    model = TASK_MODELS["BertForPreTraining"](cfg)
    cat = {e["name"]: e for e in catalogue(model)}
    probs = cat["bert.encoder.layer.1.attention.self.probs"]
    assert (probs["layer"], probs["role"], probs["priority"], probs["dims"]) == (1, "attention", 6, ["head", "token", "token"])
    assert probs["step"] == "Attention Probabilities Softmax Layer"
    assert cat["bert.embeddings.word"]["weight"] == "bert.embeddings.word_embeddings.weight"
    assert cat["cls.predictions.logits"]["weight"] == "bert.embeddings.word_embeddings.weight"  # tied
    assert cat["bert.embeddings.input_ids"]["group"] == "Input"
    assert cat["cls.seq_relationship.softmax"]["derive"] == ["softmax", "seq_relationship.logits"]
    # one entry per layer for per-layer points, none twice
    assert sum(1 for e in cat.values() if e["point"] == "probs") == cfg.num_hidden_layers
    assert len(cat) == len(catalogue(model))


def test_a_table_may_not_name_a_point_twice():
    with pytest.raises(ValueError, match="twice"):
        Points("Twice", [Point("a", (), "a"), Point("a", (), "a again")])


def test_a_capture_lists_its_names_like_a_read_only_mapping():
    cfg = BertConfig.preset("toy", vocab_size=40)
    model = TASK_MODELS["BertModel"](cfg).eval()
    with Capture(model, include=["*.attention.self.probs", "embeddings.*"]) as cap:
        model(**{k: v for k, v in _inputs("BertModel", 40).items()})
    names = list(cap)
    assert names == list(cap.keys()) == list(cap.records)
    assert len(cap) == len(names) > cfg.num_hidden_layers
    assert names.index("encoder.layer.0.attention.self.probs") < names.index("encoder.layer.1.attention.self.probs")
    assert "encoder.layer.1.attention.self.probs" in cap and "encoder.layer.1.output" not in cap
    assert cap.get("no.such.point") is None
    assert dict(cap.items())["encoder.layer.1.attention.self.probs"].shape == (2, cfg.num_attention_heads, 9, 9)
    assert f"{len(cap)} points" in repr(cap)
    with pytest.raises(TypeError):
        cap["x"] = torch.zeros(1)  # read-only


def test_a_module_run_twice_under_two_names_is_recorded_and_catalogued_per_run():
    """One set of weights, two runs (ALBERT's shared layers): each run's taps under its own name."""
    from glassbert.capture import Alias, running

    class Scale(nn.Module):
        capture = Points("Scale", [Point("out", ("hidden",), "scaled", weight="weight")])

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return tap(self, "out", x * self.weight)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = Scale()
            self.runs = [Alias("step.0", self.shared, "run 1 of 2"), Alias("step.1", self.shared, "run 2 of 2")]

        def capture_aliases(self):
            return self.runs

        def forward(self, x):
            for run in self.runs:
                with running(run):
                    x = run.module(x)
            return x

    model = Twice()
    with Capture(model) as cap:
        model(torch.ones(3))
    assert list(cap) == ["step.0.out", "step.1.out"]
    assert cap["step.1.out"].tolist() == [4.0] * 3
    assert cap.shared == {"step.0.out": "run 1 of 2", "step.1.out": "run 2 of 2"}
    entries = catalogue(model)
    assert [(e["name"], e["weight"], e["shared"]) for e in entries] == [
        ("step.0.out", "shared.weight", "run 1 of 2"), ("step.1.out", "shared.weight", "run 2 of 2")]
    model.shared(torch.ones(3))  # run outside its parent: nothing listens, nothing breaks
    with Capture(model) as cap:
        model.shared(torch.ones(3))
    assert list(cap) == ["shared.out"] and not cap.shared


@pytest.mark.parametrize("name", sorted(TASK_MODELS))
def test_the_catalogue_lists_the_points_in_the_order_the_forward_taps_them(name):
    """The page draws its diagram in catalogue order: ALBERT's layer drew its feed-forward above its attention."""
    cls = TASK_MODELS[name]
    cfg = _toy(cls, num_labels=3)
    model = cls(cfg).eval()
    with torch.no_grad(), Capture(model, explicit=True) as cap:
        model(**_inputs(name, cfg.vocab_size))
    entries = [e for e in catalogue(model) if e["name"] in cap]
    layers = {e["layer"] for e in entries if e["layer"] is not None}
    assert len(layers) == cfg.num_hidden_layers * getattr(cfg, "inner_group_num", 1)
    for layer in layers:  # within each encoder layer: attention, then feed-forward, step by step
        listed = [e["name"] for e in entries if e["layer"] == layer]
        assert listed == [n for n in cap if n in set(listed)], f"layer {layer}"
    # and box by box: each group of the diagram (embeddings, the layers, pooler, heads) where its first tap falls
    # (a task model's head was drawn first, above the input: its own points came before its children's)
    group = {e["name"]: e["group"] for e in entries}
    first = lambda names: list(dict.fromkeys(group[n] for n in names))  # noqa: E731
    assert first(e["name"] for e in entries) == first(n for n in cap if n in group)


def test_a_rebuilt_point_names_points_of_its_own_table():
    """Point.rebuild (what an exported page computes instead of storing) reads sibling points of the same table,
    with one of the page's ops."""
    import inspect

    import glassbert.albert
    import glassbert.heads
    import glassbert.model
    from glassbert.capture import Points
    ops = {"transpose", "heads_last", "heads_concat", "scale", "add_mask"}
    tables = {id(obj.capture): obj.capture for module in (glassbert.model, glassbert.heads, glassbert.albert)
              for obj in vars(module).values()
              if inspect.isclass(obj) and isinstance(getattr(obj, "capture", None), Points)}
    rebuilt = [(table, p) for table in tables.values() for p in table.points if p.rebuild]
    for table, p in rebuilt:
        op, *sources = p.rebuild
        assert op in ops, (p.name, op)
        assert all(s in {q.name for q in table.points} for s in sources if s), (p.name, sources)
    assert len(rebuilt) >= 16  # BERT's attention and ALBERT's, eight each
