"""Task MLM and packing: short document chunks share a row, and attention never crosses from one to another."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from glassbert.cli import main
from glassbert.config import BertConfig
from glassbert.errors import InputError
from glassbert.heads import BertForPreTraining
from glassbert.model import BertModel
from glassbert.pretrain import PretrainArgs
from glassbert.pretrain.config import PretrainingConfig
from glassbert.pretrain.instances import PretrainingDataset, build_instances
from glassbert.pretrain.masking import PretrainingCollator

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
CLS, SEP, PAD, MASK = 2, 3, 0, 4


class Tok:
    """The ids pretraining needs (no text)."""
    cls_token_id, sep_token_id, pad_token_id, mask_token_id = CLS, SEP, PAD, MASK
    special_ids = {PAD, 1, CLS, SEP, MASK}
    vocab_size = 50

    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" for i in ids]

    def pack(self, a, b=None):
        ids = [CLS, *a, SEP] + ([*b, SEP] if b is not None else [])
        return ids, [0] * (len(a) + 2) + [1] * (len(b) + 1 if b is not None else 0)


def documents(n: int, seed: int = 0) -> list[list[list[int]]]:
    """n documents of 1–3 sentences of 2–8 token ids each."""
    rng = random.Random(seed)
    return [[[rng.randrange(5, 50) for _ in range(rng.randint(2, 8))] for _ in range(rng.randint(1, 3))]
            for _ in range(n)]


def packed_batch(n_docs: int = 30, length: int = 48):
    cfg = PretrainingConfig(max_seq_length=length, task="mlm", pack=True)
    instances = build_instances(documents(n_docs), cfg, random.Random(0))
    dataset = PretrainingDataset(instances, Tok(), pack_length=length)
    batch = PretrainingCollator(Tok(), cfg)(dataset.items[:6], torch.Generator().manual_seed(0))
    return instances, dataset, batch


def chunk_ids(position_ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(B, T) the chunk each token belongs to, counted independently of chunk_attention: a new chunk at [CLS]."""
    out = torch.zeros_like(position_ids)
    for b in range(position_ids.shape[0]):
        n = 0
        for t in range(position_ids.shape[1]):
            if real[b, t] and position_ids[b, t] == 0:
                n += 1
            out[b, t] = n if real[b, t] else 0
    return out


def test_mlm_chunks_keep_every_token_in_order():
    cfg = PretrainingConfig(max_seq_length=16, task="mlm", short_seq_prob=0.0)
    docs = documents(20) + [[[7] * 40]]  # a sentence longer than a row is cut, not dropped
    instances = build_instances(docs, cfg, random.Random(0))
    assert all(i.tokens_b is None and 1 <= len(i.tokens_a) <= 14 for i in instances)
    assert sorted(t for i in instances for t in i.tokens_a) == sorted(t for d in docs for s in d for t in s)


def test_packing_fills_rows_and_keeps_every_chunk():
    instances, dataset, _ = packed_batch()
    rows = dataset.items
    assert all(len(r["input_ids"]) <= 48 for r in rows)
    assert len(rows) < len(instances) / 2  # short chunks share rows
    chunks = []
    for r in rows:  # split each row back at position 0: the chunks, each [CLS] … [SEP], are all there
        starts = [i for i, p in enumerate(r["position_ids"]) if p == 0] + [len(r["input_ids"])]
        for a, b in zip(starts, starts[1:]):
            ids = r["input_ids"][a:b]
            assert ids[0] == CLS and ids[-1] == SEP and r["position_ids"][a:b] == list(range(b - a))
            chunks.append(tuple(ids[1:-1]))
    assert sorted(chunks) == sorted(tuple(i.tokens_a) for i in instances)


def test_attention_never_crosses_chunks():
    """The collated mask: token i sees token j exactly when both are real and in the same chunk."""
    _, _, batch = packed_batch()
    mask, pos = batch["attention_mask"], batch["position_ids"]
    B, T = batch["input_ids"].shape
    assert mask.shape == (B, T, T) and bool((mask == mask.transpose(1, 2)).all())
    real = mask.diagonal(dim1=1, dim2=2).bool()
    assert int((chunk_ids(pos, real).max(1).values > 1).sum()) >= 3  # rows that really hold several chunks
    chunk = chunk_ids(pos, real)
    expected = (chunk[:, :, None] == chunk[:, None, :]) & real[:, :, None] & real[:, None, :]
    assert torch.equal(mask.bool(), expected)
    assert not bool(mask[~real].any())  # padding sees nothing and is seen by nothing
    labels = batch["labels"]  # masking chose only real, non-special tokens
    chosen = labels != -100
    assert bool(real[chosen].all()) and not bool(torch.isin(labels[chosen], torch.tensor([CLS, SEP])).any())
    assert "next_sentence_label" not in batch


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
def test_a_packed_row_computes_what_its_chunks_would_alone(explicit):
    """The behaviour the mask is for: each chunk's hidden states in a packed row equal the chunk run alone."""
    torch.manual_seed(0)
    model = BertModel(BertConfig.preset("tiny", vocab_size=50, max_position_embeddings=64)).eval()
    _, _, batch = packed_batch()
    with torch.no_grad():
        packed = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                       output_attentions=explicit, position_ids=batch["position_ids"]).sequence_output
        real = batch["attention_mask"].diagonal(dim1=1, dim2=2).bool()
        chunk = chunk_ids(batch["position_ids"], real)
        compared = 0
        for b in range(chunk.shape[0]):
            for c in range(1, int(chunk[b].max()) + 1):
                where = chunk[b] == c
                alone = model(batch["input_ids"][b][where][None], output_attentions=explicit).sequence_output[0]
                assert (packed[b][where] - alone).abs().max().item() < 1e-5
                compared += 1
    assert compared > batch["input_ids"].shape[0]


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_a_square_mask_and_positions_equal_transformers(tmp_path, impl):
    """A (B, T, T) mask with position_ids: transformers' BertModel given the same mask (as its 4-D additive form)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = BertModel(BertConfig.preset("tiny", vocab_size=50, max_position_embeddings=64)).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers.BertModel.from_pretrained(tmp_path, attn_implementation=impl).eval()
    _, _, batch = packed_batch()
    mask = batch["attention_mask"]
    additive = (1.0 - mask[:, None].float()) * torch.finfo(torch.float32).min
    real = mask.diagonal(dim1=1, dim2=2).bool()
    with torch.no_grad():
        expected = theirs(input_ids=batch["input_ids"], attention_mask=additive,
                          position_ids=batch["position_ids"]).last_hidden_state
        for explicit in (False, True):
            got = ours(batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                       output_attentions=explicit).sequence_output
            assert (got - expected)[real].abs().max().item() < 1e-5


def test_bad_square_mask_and_positions_are_named():
    model = BertModel(BertConfig.preset("toy", vocab_size=50))
    ids = torch.randint(5, 50, (2, 6))
    with pytest.raises(InputError, match=r"attention_mask has shape \(2, 6, 7\)"):
        model(ids, attention_mask=torch.ones(2, 6, 7, dtype=torch.long))
    with pytest.raises(InputError, match="position_ids must be in"):
        model(ids, position_ids=torch.full((2, 6), 10_000))


def test_pack_needs_task_mlm():
    with pytest.raises(InputError, match="add --task mlm"):
        PretrainArgs(corpus="c", vocab="v", out="o", pack=True)
    with pytest.raises(InputError, match="pack with task 'mlm'"):
        PretrainingConfig(task="nsp", pack=True)


def pretrain_packed(vocab: Path, run: Path, *options: str):
    result = CliRunner().invoke(main, ["pretrain", "--corpus", str(CORPUS), "--vocab", str(vocab), "--out", str(run),
                                       "--max-seq-length", "64", "--task", "mlm", "--pack", "--threads", "1", *options])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_pretrain_mlm_packed_learns_and_saves_a_bert(vocab_dir, tmp_path):
    """`glassbert pretrain --task mlm --pack` on the committed corpus: the MLM loss falls, no pair head is
    trained or reported, and transformers loads the result as BertForPreTraining with no missing keys."""
    run = tmp_path / "run"
    result = pretrain_packed(vocab_dir, run, "--preset", "tiny", "--batch-size", "16", "--lr", "1e-3", "--steps", "120",
                             "--eval-every", "1000", "--log-every", "1", "--seed", "0")
    assert "MLM)" in result.output and "packed rows" in result.output and "NSP" not in result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in rows if r.get("split") == "train"}
    assert "nsp_acc" not in train[1] and "mlm_acc" in train[1]
    first, last = train[1]["loss"], sum(train[s]["loss"] for s in range(111, 121)) / 10
    assert last < first - 0.5, (first, last)  # measured 6.42 → 5.66 (ln 600 = 6.40 at random init)
    report = json.loads((run / "pretrain_result.json").read_text())["report"]
    assert report["pair_task"] is None and report["unit"] == "packed rows"
    transformers = pytest.importorskip("transformers")
    _, info = transformers.BertForPreTraining.from_pretrained(run, output_loading_info=True)
    assert not info["missing_keys"]


def test_pack_without_mlm_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["pretrain", "--corpus", str(CORPUS), "--vocab", str(tmp_path), "--out",
                                       str(tmp_path / "r"), "--steps", "1", "--pack"])
    assert result.exit_code != 0 and "add --task mlm" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_packed_run_records_one_document_per_sample(vocab_dir, tmp_path):
    """--record on a packed run: the explorer's samples are single chunks ([CLS] … [SEP], 2-D masks)."""
    run = tmp_path / "run"
    pretrain_packed(vocab_dir, run, "--preset", "toy", "--steps", "3", "--record", "samples=0,1;every_steps=2")
    manifest = json.loads((run / "record" / "manifest.json").read_text())
    samples = manifest["samples"]
    assert len(samples) == 2
    for sample in samples:
        ids = sample["input_ids"][:sample["length"]]
        assert ids.count(ids[0]) == 1 and sample["is_next"] is None  # one [CLS]: one chunk, no pair label


def test_tokens_per_second_counts_real_tokens_of_packed_rows():
    from glassbert.train.batches import count_tokens
    _, dataset, batch = packed_batch()
    assert count_tokens(batch) == sum(len(item["input_ids"]) for item in dataset.items[:6])


def _pretraining_batch(kind: str) -> dict:
    """A batch with MLM labels: packed rows (a square mask), padded rows, or full rows (no padding at all)."""
    if kind == "packed":
        batch = dict(packed_batch()[2])
        return {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask", "position_ids", "labels")}
    g = torch.Generator().manual_seed(1)
    lengths = (12, 12, 12) if kind == "full" else (12, 7, 4)
    ids = torch.randint(5, 50, (3, 12), generator=g)
    mask = torch.zeros(3, 12, dtype=torch.long)
    labels = torch.full((3, 12), -100)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = PAD
        labels[i, 1:n:3] = ids[i, 1:n:3]
    return dict(input_ids=ids, attention_mask=mask, labels=labels, next_sentence_label=torch.tensor([0, 1, 0]))


def _fast_against_explicit(model, batch: dict):
    """One forward and backward on the fast path and one on the explicit path (which computes every row):
    both outputs, after checking that their losses and every gradient agree."""
    runs = []
    for explicit in (False, True):
        model.zero_grad()
        out = model(**batch, output_attentions=explicit)
        out.loss.backward()
        runs.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (fast, fast_grads), (full, full_grads) = runs
    assert abs(fast.loss.item() - full.loss.item()) < 1e-6
    assert fast_grads.keys() == full_grads.keys()
    assert max((fast_grads[n] - full_grads[n]).abs().max().item() for n in full_grads) < 1e-5
    return fast, full


@pytest.mark.parametrize("arch", ["bert", "albert"])
@pytest.mark.parametrize("kind", ["padded", "packed", "full"])
def test_the_last_layer_on_the_rows_read_only_changes_no_number(arch, kind):
    """Training with labels, the fast path's last layer computes only the masked tokens and [CLS] (the rest
    attend as keys but produce no output): loss, logits and every gradient equal the explicit path's, which
    computes all. (Dropout 0, so that training mode is deterministic.)"""
    from glassbert.albert import AlbertForPreTraining
    from glassbert.config import AlbertConfig
    torch.manual_seed(0)
    quiet = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if arch == "bert":
        model = BertForPreTraining(BertConfig.preset("tiny", vocab_size=50, max_position_embeddings=64, **quiet))
    else:
        model = AlbertForPreTraining(AlbertConfig.preset("tiny", vocab_size=50, max_position_embeddings=64,
                                                         classifier_dropout=0.0, **quiet))
    model.train()
    batch = _pretraining_batch(kind)
    if arch == "albert" and "next_sentence_label" in batch:
        batch["sentence_order_label"] = batch.pop("next_sentence_label")
    fast, full = _fast_against_explicit(model, batch)
    assert (fast.prediction_logits - full.prediction_logits).abs().max().item() < 1e-5
    read = batch["labels"] != -100
    read[:, 0] = True
    real = batch["attention_mask"] if batch["attention_mask"].dim() == 2 else \
        batch["attention_mask"].diagonal(dim1=1, dim2=2)
    read &= real.bool()
    seq_fast, seq_full = fast.bert.sequence_output, full.bert.sequence_output
    assert (seq_fast[read] - seq_full[read]).abs().max().item() < 1e-5
    assert not bool(seq_fast[~read].any()), "rows the heads do not read are not computed (zeros)"
    model.eval()  # in eval mode every row is computed (hooks such as attribution's read whole layers)
    with torch.no_grad():
        assert bool(model(**batch).bert.sequence_output[~read & real.bool()].any())


def test_to_front_lays_the_selected_tokens_at_the_front_of_their_rows():
    from glassbert.unpad import Unpadded
    chosen = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    front = Unpadded.from_mask(chosen).to_front()
    assert (front.batch, front.length) == (3, 3)                  # as wide as the fullest row
    assert front.indices.tolist() == [0, 1, 2, 6, 7]              # row 0: slots 0-2; row 2: slots 0-1
    rows = torch.arange(5.0)[:, None]                             # the 5 chosen tokens, in order
    assert front.pad(rows)[..., 0].tolist() == [[0, 1, 2], [0, 0, 0], [3, 4, 0]]
    assert torch.equal(front.unpad(front.pad(rows)), rows)
    none = Unpadded.from_mask(torch.zeros(2, 4, dtype=torch.bool)).to_front()
    assert (none.length, none.indices.numel()) == (1, 0)


@pytest.mark.parametrize("kind", ["padded", "full", "packed"])
def test_only_the_rows_read_attend_in_the_last_layer(kind, monkeypatch):
    """Pretraining's last layer computes Q for the masked tokens and [CLS] alone and only they attend: the
    attention there has as many queries a row as the row with the most of them (packed rows, whose mask is by
    query, attend in full and keep the rows afterwards)."""
    from glassbert.model import BertSelfAttention
    queries = []
    attend = BertSelfAttention.attend
    monkeypatch.setattr(BertSelfAttention, "attend",
                        lambda self, q, k, v, mask: queries.append((q.shape[2], k.shape[2])) or attend(self, q, k, v, mask))
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.preset("tiny", vocab_size=50, max_position_embeddings=64)).train()
    batch = _pretraining_batch(kind)
    model(**batch).loss.backward()
    read = batch["labels"] != -100
    read[:, 0] = True
    T = batch["input_ids"].shape[1]
    last = (T, T) if kind == "packed" else (int(read.sum(1).max()), T)
    assert queries == [(T, T)] * (model.config.num_hidden_layers - 1) + [last]
    assert kind == "packed" or last[0] < T


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_a_classifier_trains_its_last_layer_on_cls_alone_when_that_is_all_it_reads(pooling):
    """Fine-tuning a classifier pooled by the pooler or [CLS] computes only the [CLS] row of the last layer (mean
    pooling reads every row, so all are computed); the loss and every gradient equal the explicit path's."""
    from glassbert.heads import BertForSequenceClassification
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.preset(
        "tiny", vocab_size=50, max_position_embeddings=64, num_labels=3, classifier_pooling=pooling,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).train()
    batch = _pretraining_batch("padded")
    batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
             "labels": torch.tensor([0, 2, 1])}
    fast, _ = _fast_against_explicit(model, batch)
    seq = fast.bert.sequence_output
    assert bool(seq[:, 1:].any()) == (pooling == "mean")
