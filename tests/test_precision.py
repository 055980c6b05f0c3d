"""--precision fp32|bf16|auto|int8: the detection of fast bf16 (faked both ways), the choice reaching the library from
every command, bf16 really running under autocast, fp32 unchanged, saved weights fp32, resume keeping it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

import glassbert as gb
import helpers_train as h
from glassbert import precision as P
from glassbert.cli import main
from glassbert.embed import Embedder
from glassbert.errors import InputError
from glassbert.model import BertModel
from glassbert.pretrain import PretrainArgs
from glassbert.serve import ServeConfig, Service
from glassbert.synthetic import make_dataset
from helpers_tasks import tiny_bert

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n\nprocessor\t: 1\n"
ZEN4_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n"
AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


# ─── detection ──────────────────────────────────────────────────────────────────────────────
def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(AMX_CPUINFO)
    assert {"amx_bf16", "amx_tile", "avx512_bf16"} <= P.cpu_flags(path)
    assert P.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("cpuinfo, torch_says, amx, fast", [
    (AMX_CPUINFO, True, True, True),     # Sapphire Rapids and later
    (AMX_CPUINFO, False, False, True),   # torch cannot use the tiles (kernel too old), but avx512_bf16 is there
    (ZEN4_CPUINFO, True, False, True),   # AMD Zen 4 / Zen 5: avx512_bf16 alone, bf16 GEMMs 2.3-4.2x fp32
    (AVX2_CPUINFO, True, False, False),  # AVX2 only: bf16 slower than fp32
    ("", True, False, False),            # no cpuinfo (not Linux)
])
def test_fast_bf16_detection_both_answers(tmp_path, monkeypatch, cpuinfo, torch_says, amx, fast):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    monkeypatch.setattr(P, "CPUINFO", path)
    monkeypatch.setattr(P, "_torch_can_use_amx", lambda: torch_says)
    assert P.has_amx() is amx
    assert P.fast_bf16("cpu") is fast
    assert P.use_bf16("auto", "cpu") is fast
    assert P.resolve("auto", "cpu") == ("bf16" if fast else "fp32")
    # the explicit choices do not depend on the hardware
    assert P.use_bf16("bf16", "cpu") and not P.use_bf16("fp32", "cpu")


def test_this_machine_answers_without_error():
    assert isinstance(P.has_amx(), bool)
    assert P.resolve("auto", "cpu") in ("fp32", "bf16")


def test_int8_is_refused_for_training_in_one_line(tmp_path):
    with pytest.raises(InputError, match="int8 is for inference only"):
        P.check_precision("int8", training=True)
    with pytest.raises(InputError, match="int8 is for inference only"):
        PretrainArgs(corpus="c", vocab="v", out="o", precision="int8")
    assert P.check_precision("int8") == "int8" and P.resolve("int8", "cpu") == "int8"
    assert not P.use_bf16("int8", "cpu")
    (tmp_path / "t.csv").write_text("text,label\na,b\n")
    result = run("finetune", "minilm", "--train", tmp_path / "t.csv", "--out", tmp_path / "o", "--precision", "int8")
    assert result.exit_code == 2 and "'int8' is not one of 'fp32', 'bf16', 'auto'" in result.output


def test_bad_precision_is_one_line():
    with pytest.raises(InputError, match="precision must be one of fp32, bf16, auto, int8, got 'fp16'"):
        P.check_precision("fp16")
    result = run("embed", "minilm", "x", "--precision", "fp16")
    assert result.exit_code == 2 and "'fp16' is not one of 'fp32', 'bf16', 'auto'" in result.output


@pytest.mark.parametrize("cpuinfo, fast", [(ZEN4_CPUINFO, True), (AVX2_CPUINFO, False), (AMX_CPUINFO, True)])
def test_trainer_auto_follows_the_detection(tmp_path, monkeypatch, cpuinfo, fast):
    """TrainConfig(precision='auto') on the CPU trains in bf16 exactly when the CPU has AVX512-BF16 or AMX (the
    faked /proc/cpuinfo)."""
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    monkeypatch.setattr(P, "CPUINFO", path)
    monkeypatch.setattr(P, "_torch_can_use_amx", lambda: True)
    trainer = h.make_trainer(tmp_path / "run", precision="auto", max_steps=1)
    assert trainer.bf16 is fast
    assert h.make_trainer(tmp_path / "run2", precision="fp32", max_steps=1).bf16 is False
    assert h.make_trainer(tmp_path / "run3", precision="bf16", max_steps=1).bf16 is True


def test_saved_precision_reads_the_amp_of_run_dirs_written_before():
    """trainer_config.json and pretrain_args.json name the precision; those written before held TrainConfig's
    "amp" (no | bf16 | auto), which reads as the same choice."""
    assert [P.saved_precision({"precision": p}) for p in P.PRECISIONS] == list(P.PRECISIONS)
    assert [P.saved_precision({"amp": a}) for a in ("no", "bf16", "auto")] == ["fp32", "bf16", "auto"]
    assert P.saved_precision({}) == "auto" and P.saved_precision({"precision": "bf16", "amp": "no"}) == "bf16"


def test_finetune_resume_of_a_run_dir_from_before_keeps_its_precision(tmp_path):
    """A fine-tuning run dir whose trainer_config.json holds "amp" (written before TrainConfig.precision) resumes in
    the precision it was started with, and refuses another."""
    from glassbert.tasks.job import FinetuneArgs, run_precision
    for amp, precision in (("no", "fp32"), ("bf16", "bf16"), ("auto", "auto")):
        out = tmp_path / amp
        out.mkdir()
        (out / "trainer_config.json").write_text(json.dumps({"amp": amp, "amp_enabled": amp == "bf16", "seed": 0}))
        args = FinetuneArgs(model="m", train="t", out=out, resume=True)
        assert run_precision(args, out) == precision
        other = "bf16" if precision == "fp32" else "fp32"
        with pytest.raises(InputError, match=f"started with \\({precision}\\); drop --precision {other}"):
            run_precision(FinetuneArgs(model="m", train="t", out=out, resume=True, precision=other), out)


def test_autocast_off_leaves_an_outer_autocast_on():
    with torch.autocast("cpu", dtype=torch.bfloat16), P.autocast("cpu", False):
        assert torch.is_autocast_enabled("cpu")
    with P.autocast("cpu", True):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


# ─── what the model ran under ───────────────────────────────────────────────────────────────
@pytest.fixture
def seen(monkeypatch) -> list[bool]:
    """Every BertModel forward from here on appends whether it ran under CPU bf16 autocast."""
    calls: list[bool] = []
    forward = BertModel.forward

    def spy(self, *args, **kwargs):
        calls.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BertModel, "forward", spy)
    return calls


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT with an MLM head, and tiny classify / token / qa runs fine-tuned (one epoch) by the CLI in bf16."""
    root = tmp_path_factory.mktemp("precision")
    base = tiny_bert(root / "base")
    mlm = gb.BertForMaskedLM.from_pretrained(base).save_pretrained(root / "mlm")
    out = {"base": base, "mlm": mlm}
    for task, name, max_length in (("classify", "sentiment", 64), ("token", "ner", 64), ("qa", "qa", 40)):
        train, test = make_dataset(name, root / "data" / name, n=32, seed=1).files
        result = run("finetune", base, "--task", task, "--train", train, "--eval", test, "--out", root / task,
                     "--epochs", 1, "--batch-size", 16, "--lr", "2e-3", "--max-length", max_length,
                     "--doc-stride", 16, "--precision", "bf16")
        assert result.exit_code == 0, result.output
        out[task], out[f"{task}_data"] = root / task, (train, test)
    return out


INFERENCE = {
    "embed": lambda m: ("embed", m["base"], "the cat sat on the mat", "a second text"),
    "similarity": lambda m: ("similarity", m["base"], "the cat sat", "the dog ran"),
    "fill-mask": lambda m: ("fill-mask", m["mlm"], "the [MASK] sat on the mat"),
    "classify": lambda m: ("classify", m["classify"], "a great movie", "a dull movie"),
    "tag": lambda m: ("tag", m["token"], "Alice Becker flew to Paris."),
    "answer": lambda m: ("answer", m["qa"], "--question", "Where was Zoe born?", "--context",
                         "Zoe Weber was born in Lima in 1931."),
}


@pytest.mark.parametrize("command", list(INFERENCE))
def test_inference_commands_run_in_the_precision_asked(models, seen, command, monkeypatch):
    """fp32 by default; --precision bf16 runs every forward under bf16 autocast; int8 quantizes the model once
    and runs it without autocast; the output stays readable."""
    from glassbert import quantize as Q
    quantized = []
    real = Q.quantize_int8
    monkeypatch.setattr(Q, "quantize_int8", lambda model, *a: quantized.append(model) or real(model, *a))
    outputs = {}
    for flag in ((), ("--precision", "fp32"), ("--precision", "bf16"), ("--precision", "int8")):
        seen.clear()
        result = run(*INFERENCE[command](models), *flag)
        assert result.exit_code == 0, result.output
        assert seen and all(x == (flag[-1:] == ("bf16",)) for x in seen), (flag, seen)
        assert len(quantized) == (flag[-1:] == ("int8",)), flag  # once, only for int8
        outputs[flag] = result.output
    assert outputs[()] == outputs[("--precision", "fp32")]  # fp32 is the default, to the printed digit


def test_finetune_trained_under_bf16_and_saved_fp32_weights(models):
    for task in ("classify", "token", "qa"):
        run_dir = models[task]
        assert json.loads((run_dir / "trainer_config.json").read_text())["precision"] == "bf16"
        assert json.loads((run_dir / "trainer_config.json").read_text())["precision_resolved"] == "bf16"
        assert json.loads((run_dir / "eval.json").read_text())["precision"] == "bf16"
        with safe_open(str(run_dir / "model.safetensors"), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


@pytest.mark.slow
def test_finetune_training_forwards_under_autocast_and_resume_keeps_the_precision(models, seen, tmp_path):
    base, (train, test) = models["base"], models["classify_data"]
    common = ("--train", train, "--eval", test, "--out", tmp_path / "run", "--batch-size", 16, "--max-length", 32)
    result = run("finetune", base, *common, "--epochs", 1, "--precision", "bf16", "--keep-checkpoint")  # to extend it
    assert result.exit_code == 0, result.output
    assert "precision bf16" in result.output
    assert any(seen), "no training forward ran under bf16 autocast"
    refused = run("finetune", base, *common, "--epochs", 2, "--resume", "--precision", "fp32")
    assert refused.exit_code == 1
    assert "in the precision it was started with (bf16); drop --precision fp32" in refused.output
    seen.clear()
    resumed = run("finetune", base, *common, "--epochs", 2, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert any(seen) and json.loads((tmp_path / "run" / "eval.json").read_text())["precision"] == "bf16"


def test_finetune_fp32_runs_no_autocast(models, seen, tmp_path):
    base, (train, test) = models["base"], models["classify_data"]
    result = run("finetune", base, "--train", train, "--eval", test, "--out", tmp_path / "run", "--epochs", 1,
                 "--batch-size", 16, "--max-length", 32, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert seen and not any(seen)
    assert json.loads((tmp_path / "run" / "trainer_config.json").read_text())["precision"] == "fp32"


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vocab") / "v"
    assert run("vocab", "train", "--corpus", CORPUS, "--size", 600, "--out", out).exit_code == 0
    return out


@pytest.mark.slow
def test_pretrain_bf16_is_saved_in_its_args_and_resume_keeps_it(vocab, seen, tmp_path):
    out = tmp_path / "run"
    args = ("pretrain", "--corpus", CORPUS, "--vocab", vocab, "--out", out, "--preset", "tiny",
            "--max-seq-length", 32, "--batch-size", 8, "--save-every", 2, "--eval-every", 100)
    result = run(*args, "--steps", 2, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert any(seen)
    assert json.loads((out / "pretrain_args.json").read_text())["precision"] == "bf16"
    assert json.loads((out / "trainer_config.json").read_text())["precision_resolved"] == "bf16"
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}
    refused = run("pretrain", "--resume", out, "--steps", 3, "--precision", "fp32")
    assert refused.exit_code == 2 and "--precision cannot be changed on resume" in refused.output
    seen.clear()
    resumed = run("pretrain", "--resume", out, "--steps", 3)
    assert resumed.exit_code == 0, resumed.output
    assert seen and seen[0]  # the resumed session's training step ran under bf16 autocast (the end report: fp32)
    assert json.loads((out / "pretrain_args.json").read_text())["precision"] == "bf16"


def test_pretrain_args_of_a_run_from_before_precision_resume(tmp_path):
    """pretrain_args.json written before --precision holds TrainConfig's "amp": it reads as the same precision."""
    from glassbert.pretrain.job import resume_pretraining
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "pretrain_args.json").write_text(json.dumps({"corpus": str(tmp_path / "gone"), "vocab": "v",
                                                            "amp": "auto"}))
    with pytest.raises(gb.errors.MissingError, match="not there any more"):  # read past the args: "amp" is known
        resume_pretraining(run_dir)
    assert PretrainArgs(corpus="c", vocab="v", out="o").precision == "auto"
    with pytest.raises(InputError, match="precision must be one of"):
        PretrainArgs(corpus="c", vocab="v", out="o", precision="half")


# ─── the library ────────────────────────────────────────────────────────────────────────────
@pytest.mark.slow
def test_embedder_fp32_unchanged_and_bf16_close(minilm_path):
    texts = ["A man is eating food.", "The girl is carrying a baby.", "Stocks fell sharply on Monday."]
    default = Embedder(minilm_path).encode(texts, normalize=True)
    fp32 = Embedder(minilm_path, precision="fp32").encode(texts, normalize=True)
    bf16 = Embedder(minilm_path, precision="bf16")
    assert bf16.precision == "bf16" and Embedder(minilm_path).precision == "fp32"
    low = bf16.encode(texts, normalize=True)
    assert np.array_equal(default, fp32) and low.dtype == np.float32
    cosines = (fp32 * low).sum(1)
    assert cosines.min() > 0.999 and not np.array_equal(fp32, low)  # close, and really computed in bf16
    with pytest.raises(InputError, match="precision must be one of"):
        Embedder(minilm_path, precision="fp16")


def test_serve_runs_each_endpoint_in_its_precision(models, seen):
    from glassbert.quantize import runs_as
    for precision, expected in (("fp32", False), ("bf16", True), ("int8", False)):
        service = Service(models["mlm"], ServeConfig(precision=precision))
        assert runs_as(service.model) == precision and service.embedder.model is service.backbone
        assert service.info()["precision"] == precision
        for kind, items in (("embed", ["the cat sat"]), ("fill-mask", [("the [MASK] sat", 1)])):
            seen.clear()
            service.run(kind, items)
            assert seen and all(x is expected for x in seen), (precision, kind)
        classifier = Service(models["classify"], ServeConfig(precision=precision))
        seen.clear()
        classifier.run("predict", [("a great movie", None)])
        assert seen and all(x is expected for x in seen)
    with pytest.raises(InputError, match="--precision must be one of"):
        ServeConfig(precision="fp16").check()


def test_serve_command_passes_the_precision(monkeypatch, models):
    got = {}
    monkeypatch.setattr("glassbert.serve.serve", lambda model, config=None, **kw: got.update(config=config))
    assert run("serve", models["base"]).exit_code == 0 and got["config"].precision == "fp32"
    assert run("serve", models["base"], "--precision", "auto").exit_code == 0 and got["config"].precision == "auto"


@pytest.mark.parametrize("amx", [False, True])
def test_bf16_attention_runs_in_fp32_on_a_cpu_without_amx(monkeypatch, amx):
    """torch's bf16 scaled_dot_product_attention is slower than its fp32 one on a CPU without AMX: there the
    fast path attends in fp32 (autocast kept off around it, which would cast back), elsewhere in bf16; the
    outputs stay bf16-close to fp32 either way."""
    import torch.nn.functional as F

    import glassbert.model as M
    monkeypatch.setattr(P, "_cpu_has_amx", lambda: amx)
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        out = real(q, k, v, **kwargs)
        seen.append(out.dtype)  # the dtype attention computed in, after any autocast cast
        return out
    monkeypatch.setattr(M.F, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    model = BertModel(gb.BertConfig.preset("tiny", vocab_size=60)).eval()
    ids = torch.randint(5, 60, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    with torch.no_grad():
        fp32 = model(ids, attention_mask=mask).sequence_output
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(ids, attention_mask=mask).sequence_output
    assert seen[:2] == [torch.float32, torch.float32]
    assert set(seen[2:]) == {torch.bfloat16 if amx else torch.float32}
    real_rows = mask.bool()
    assert (bf16.float() - fp32)[real_rows].abs().max().item() < 0.1


# ─── weights prepared once for inference: bf16 cast, int8 quantized ────────────────────────────
REVIEWS = ["These are the best tasting gummy fruits I have ever eaten.", "Arrived stale and the box was crushed.",
           "My dog loves these treats, but they smell awful.", "Too sweet for me; my kids liked it though.",
           "The coffee is smooth, not bitter, and cheaper than the store.", "Would not buy again."]


def test_embedder_int8_vectors_close_to_fp32_and_bf16_weights_cast_once(minilm_path):
    """int8 (dynamic quantization of the linear layers): mean cosine ≥ 0.99 to fp32 on real reviews, in fp32;
    bf16: the Linear weights are bf16 after loading (not re-cast per call), LayerNorm and embeddings stay fp32."""
    from torch import nn
    fp32 = Embedder(minilm_path).encode(REVIEWS)
    int8 = Embedder(minilm_path, precision="int8")
    assert int8.precision == "int8" and "Int8Linear" in type(int8.model.encoder.layer[0].output.dense).__name__
    low = int8.encode(REVIEWS)
    cosines = (fp32 * low).sum(1)  # the bar is the mean; short texts sit lowest (0.986 here)
    assert low.dtype == np.float32 and cosines.mean() >= 0.99 and cosines.min() >= 0.98
    bf16 = Embedder(minilm_path, precision="bf16")
    linears = [m for m in bf16.model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert bf16.model.embeddings.LayerNorm.weight.dtype == torch.float32
    assert bf16.model.embeddings.word_embeddings.weight.dtype == torch.float32
    # transformers' own bf16 tests compare at atol 1e-2 on hidden states; unit vectors here agree far closer
    assert ((fp32 * bf16.encode(REVIEWS)).sum(1) > 0.999).all()


def test_embedder_int8_on_a_model_object_quantizes_a_copy(minilm_path):
    from glassbert.registry import load_as
    model = load_as(minilm_path)
    tokenizer = gb.Tokenizer.from_pretrained(minilm_path)
    embedder = Embedder(model, tokenizer, precision="int8")
    assert embedder.model is not model and isinstance(model.encoder.layer[0].output.dense, torch.nn.Linear)
    assert model.encoder.layer[0].attention.self.qkv is None  # the caller's model is as it was


def test_int8_classifier_labels_agree_with_fp32(models):
    """A fine-tuned classifier's labels under int8 are fp32's on its test set; probabilities come back fp32."""
    from glassbert import pipeline
    import csv
    with open(models["classify_data"][1]) as f:
        texts = [row["text"] for row in csv.DictReader(f)] + REVIEWS
    fp32 = pipeline("text-classification", models["classify"])(texts)
    int8 = pipeline("text-classification", models["classify"], precision="int8")(texts)
    assert [r["label"] for r in int8] == [r["label"] for r in fp32]
    assert all(isinstance(r["score"], float) for r in int8)
    assert max(abs(a["score"] - b["score"]) for a, b in zip(fp32, int8)) < 0.05


def test_a_prepared_model_refuses_another_precision(minilm_path):
    from glassbert.quantize import for_inference
    from glassbert.registry import load_as
    model = load_as(minilm_path)
    assert for_inference(model, "int8", "cpu") == "int8" and for_inference(model, "int8", "cpu") == "int8"
    with pytest.raises(InputError, match="prepared for int8 inference; load it again"):
        for_inference(model, "bf16", "cpu")


def test_attend_each_row_is_masked_attention_without_the_padding():
    """unpad.attend_each_row on the unpadded fused Q, K, V equals attention over the padded batch with the [PAD]
    keys masked, for padding on the right, on the left, a full row and an empty one."""
    import torch.nn.functional as F

    from glassbert.unpad import Unpadded, additive_mask, attend_each_row
    torch.manual_seed(0)
    B, T, heads, size = 4, 9, 3, 5
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 6:] = 0
    mask[1, :4] = 0
    mask[3] = 0
    qkv = torch.randn(B, T, 3 * heads * size, dtype=torch.float64)
    packing = Unpadded.from_mask(mask)
    got = packing.pad(attend_each_row(packing.unpad(qkv), packing, heads))            # (B, T, A)
    q, k, v = (t.view(B, T, heads, size).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask(mask, qkv.dtype))
    want = want.transpose(1, 2).reshape(B, T, -1)
    real = mask.bool()
    assert packing.spans == [(0, 6), (6, 11), (11, 20)]
    assert (got[real] - want[real]).abs().max().item() < 1e-12 and (got[~real] == 0).all()


@pytest.mark.parametrize("amx", [False, True])
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_prepared_model_matches_fp32_on_every_kind_of_batch(monkeypatch, amx, precision):
    """A model prepared for inference attends within each row's own tokens and (bf16) computes its layers in
    bf16 from the fp32 embeddings: padding on either side, no padding, and packed rows (a (B, T, T) mask) all
    give the fp32 model's numbers within bf16 / int8 error, padding rows zero, the outputs back in fp32."""
    from glassbert.quantize import prepared_copy
    monkeypatch.setattr(P, "_cpu_has_amx", lambda: amx)  # attention in bf16 (AMX) or fp32 (not)
    torch.manual_seed(0)
    model = BertModel(gb.BertConfig.preset("mini", vocab_size=300)).eval()
    with torch.no_grad():  # sharp attention, so that attending to the wrong tokens shows
        for layer in model.encoder.layer:
            layer.attention.self.query.weight.mul_(8)
            layer.attention.self.key.weight.mul_(8)
    prepared = prepared_copy(model, precision, "cpu")
    ids = torch.randint(5, 300, (4, 20))
    padded = torch.ones_like(ids)
    padded[1, 12:] = 0
    padded[2, :5] = 0
    square = torch.zeros(4, 20, 20, dtype=torch.long)  # two documents a row
    square[:, :10, :10] = square[:, 10:, 10:] = 1
    square[0, 16:] = square[0, :, 16:] = 0  # and padding: the unpadded path, where the mask must still hold
    positions = torch.cat([torch.arange(10), torch.arange(10)]).expand(4, 20)
    for mask, pos in ((padded, None), (torch.ones_like(ids), None), (square, positions)):
        with torch.no_grad():
            want = model(ids, attention_mask=mask, position_ids=pos)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                got = prepared(ids, attention_mask=mask, position_ids=pos)
        real = (mask if mask.dim() == 2 else mask.diagonal(dim1=1, dim2=2)).bool()
        assert got.sequence_output.dtype == got.pooled_output.dtype == torch.float32
        diff = (got.sequence_output - want.sequence_output)[real]
        relative = (diff.norm(dim=-1) / want.sequence_output[real].norm(dim=-1)).mean().item()
        assert relative < 0.03, (precision, mask.shape, relative)
        assert (got.sequence_output[~real] == 0).all()
        assert len(got.encoder_outputs) == 4 and got.encoder_outputs[0].shape == (4, 20, 256)
        if precision == "bf16":  # the layers computed in bf16
            assert got.encoder_outputs[0].dtype == torch.bfloat16
