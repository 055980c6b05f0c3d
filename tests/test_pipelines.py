"""glassbert.pipeline: each task called from Python gives what its command prints for the same input; the model
loads once; a bad task or a model without the task's head is one line; finetune/pretrain from keywords."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import glassbert as gb
from glassbert.cli import main
from glassbert.errors import GlassbertError, InputError
from glassbert.synthetic import make_dataset
from helpers_tasks import tiny_bert

TEXTS = ["Alice Becker flew to Paris on Monday.", "a great movie, loved it", "a dull movie"]
CONTEXT = "Zoe Weber was born in Lima in 1931. Umar Costa bought a kayak in Oslo."
QUESTIONS = ["Where was Zoe Weber born?", "Who bought a kayak?"]


def ok(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny random BERT (its encoder, and with an MLM head) and tiny classify / token / qa runs, fine-tuned
    from Python for one short epoch: they need not be right, only give the command's answers."""
    root = tmp_path_factory.mktemp("pipelines")
    base = tiny_bert(root / "base")
    out = {"base": base, "mlm": gb.BertForMaskedLM.from_pretrained(base).save_pretrained(root / "mlm")}
    for task, name, max_length in (("classify", "sentiment", 64), ("token", "ner", 64), ("qa", "qa", 40)):
        train, test = make_dataset(name, root / "data" / name, n=32, seed=1).files
        summary = gb.finetune(base, train, root / task, task=task, eval=test, epochs=1, batch_size=16, lr=2e-3,
                              max_length=max_length, doc_stride=16, progress=False, quiet=True, threads=1)
        assert (root / task / "config.json").is_file() and "metrics" in summary
        out[task] = root / task
    return out


@pytest.mark.slow
def test_the_package_stays_light_and_exports_the_api():
    import subprocess
    import sys
    code = ("import sys, glassbert as gb; loaded = {'glassbert.pipelines', 'glassbert.tasks', 'glassbert.pretrain', "
            "'glassbert.embed'} & set(sys.modules); assert not loaded, loaded; "
            "assert callable(gb.pipeline) and callable(gb.finetune) and callable(gb.pretrain)")
    subprocess.run([sys.executable, "-c", code], check=True)
    import glassbert.pretrain.job  # noqa: F401  (the subpackage is what gb.pretrain names: still callable)
    assert callable(gb.pretrain) and gb.pretrain.PretrainArgs is glassbert.pretrain.job.PretrainArgs


def test_feature_extraction_is_embed_and_similarity(models, tmp_path):
    fe = gb.pipeline("feature-extraction", model=models["base"])
    vectors = fe(TEXTS)
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)  # as `embed`: unit length
    ok("embed", models["base"], *TEXTS, "--out", tmp_path / "v.npy")
    np.testing.assert_allclose(vectors, np.load(tmp_path / "v.npy"), atol=1e-6)
    printed = ok("similarity", models["base"], *TEXTS)
    rows = [[float(x) for x in re.findall(r"-?\d\.\d{3}", line)[:3]] for line in printed.splitlines()[1:]]
    np.testing.assert_allclose(fe.similarity(TEXTS), rows, atol=1e-3)
    assert gb.pipeline("embed", models["base"]).task == "feature-extraction"  # the command's name too


def test_fill_mask_is_the_command(models):
    fill = gb.pipeline("fill-mask", model=models["mlm"])
    texts = ["the [MASK] sat on the mat", "[MASK] went to [MASK]"]
    one, two = fill(texts, top_k=3)
    assert len(one) == 3 and len(two) == 2 and all(len(c) == 3 for c in two)  # a list per [MASK] when several
    assert fill(texts[0], top_k=3) == one
    printed = re.findall(r"^\s+([\d.]+)%\s+(\S+)$", ok("fill-mask", models["mlm"], *texts, "--top-k", 3), re.M)
    ours = [c for c in one] + [c for mask in two for c in mask]
    assert [t for _, t in printed] == [c["token_str"] for c in ours]
    assert [float(p) for p, _ in printed] == pytest.approx([100 * c["score"] for c in ours], abs=0.006)


def test_text_classification_is_the_command(models):
    clf = gb.pipeline("text-classification", model=models["classify"])
    got = clf(TEXTS)
    assert [set(r) for r in got] == [{"label", "score"}] * 3
    printed = ok("classify", models["classify"], *TEXTS).splitlines()[1:]
    assert [line.split()[-2:] for line in printed] == [[r["label"], f"{r['score']:.3f}"] for r in got]
    everything = clf(TEXTS[0], top_k=None)[0]
    assert {r["label"] for r in everything} == {"negative", "positive"}
    assert everything[0]["label"] == got[0]["label"] and everything[0]["score"] == pytest.approx(got[0]["score"])
    assert sum(r["score"] for r in everything) == pytest.approx(1)


def test_token_classification_is_the_command(models):
    tagger = gb.pipeline("token-classification", model=models["token"])
    got = tagger(TEXTS)
    assert len(got) == 3 and tagger(TEXTS[0]) == got[0]
    for text, entities in zip(TEXTS, got):
        for e in entities:
            assert text[e["start"]:e["end"]] == e["word"] and set(e) == {"entity_group", "score", "word", "start",
                                                                         "end"}
    command = [json.loads(line) for line in ok("tag", models["token"], *TEXTS, "--format", "jsonl").splitlines()]
    tagged = tagger.run(TEXTS)
    assert [t.to_dict() for t in tagged] == command  # every word's tag and probability, as the command's
    assert got == [[{"entity_group": e.type, "score": e.score, "word": e.text, "start": e.start, "end": e.end}
                    for e in t.entities] for t in tagged]


def test_question_answering_is_the_command(models):
    qa = gb.pipeline("question-answering", model=models["qa"])
    one = qa(question=QUESTIONS[0], context=CONTEXT)
    assert set(one) == {"answer", "score", "start", "end"} and CONTEXT[one["start"]:one["end"]] == one["answer"]
    both = qa(question=QUESTIONS, context=CONTEXT)
    assert both[0] == one and len(both) == 2
    assert len(qa(question=QUESTIONS[0], context=CONTEXT, top_k=3)) == 3
    printed = ok("answer", models["qa"], "--question", QUESTIONS[0], "--question", QUESTIONS[1], "--context", CONTEXT)
    found = re.findall(r"1\. '(.*)'  \(characters (\d+):(\d+), score [-\d.]+, probability ([\d.]+)\)", printed)
    assert found == [(a["answer"], str(a["start"]), str(a["end"]), f"{a['score']:.3f}") for a in both]


def test_a_pipeline_loads_once_and_chooses_threads_as_the_command(models, monkeypatch):
    from glassbert import registry
    loads = []
    real = registry.load_as
    monkeypatch.setattr("glassbert.tasks.common.load_as", lambda *a, **k: loads.append(a) or real(*a, **k))
    monkeypatch.setenv("GLASSBERT_THREADS", "2")
    clf = gb.pipeline("classify", model=models["classify"])
    assert torch.get_num_threads() == 2  # the environment's choice, as the command's (glassbert.threads)
    torch.set_num_threads(1)
    clf(TEXTS)
    clf(TEXTS[:1])
    assert len(loads) == 1
    gb.pipeline("classify", model=models["classify"], threads=1, precision="bf16")
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("task, model, message", [
    ("summarization", "base", "unknown pipeline task 'summarization': choose one of fill-mask, text-classification"),
    ("text-classification", "base", "no id2label; this is not a fine-tuned classifier"),
    ("token-classification", "classify", "was fine-tuned for task 'classify', not 'token': `glassbert classify`"),
    ("question-answering", "base", "is not fine-tuned for task 'qa'"),
    ("fill-mask", "base", "has no trained MLM head"),
])
def test_bad_task_or_a_model_without_the_head_is_one_line(models, task, model, message):
    with pytest.raises(GlassbertError) as error:
        gb.pipeline(task, model=models[model])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_precision_and_unknown_training_options_are_one_line(models, tmp_path):
    with pytest.raises(InputError, match="precision must be one of fp32, bf16, auto"):
        gb.pipeline("fill-mask", models["mlm"], precision="fp16")
    with pytest.raises(InputError, match=r"finetune\(\): .*unexpected keyword argument 'epoch'"):
        gb.finetune(models["base"], tmp_path / "train.csv", tmp_path / "out", epoch=1)
    with pytest.raises(InputError, match="say when to stop"):
        gb.pretrain(corpus=tmp_path, vocab=models["base"], out=tmp_path / "run")
    with pytest.raises(InputError, match="preset cannot be changed on resume"):
        gb.pretrain(resume=tmp_path, preset="tiny")


@pytest.mark.slow
def test_pretrain_from_python_is_the_job(vocab_dir, tmp_path):
    corpus = Path(__file__).parent / "data" / "tiny_corpus.txt"
    result = gb.pretrain(corpus=corpus, vocab=vocab_dir, out=tmp_path / "run", preset="toy", steps=2,
                         max_seq_length=32, batch_size=4, threads=1)
    assert result["step"] == 2 and (tmp_path / "run" / "config.json").is_file()
    fill = gb.pipeline("fill-mask", model=tmp_path / "run")
    assert len(fill("the [MASK] of the union", top_k=2)) == 2
