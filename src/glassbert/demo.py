"""`glassbert demo`: the six-pair toy BERT of the article "Deep Learning 101: Lesson 31: Exploring BERT"
(Muneeb S. Ahmad), pretrained on the CPU.

Six sentence pairs, a word-level vocabulary, up to two masked words per pair, hidden size 7, two layers
of five heads of size 4, sequences of 14 tokens. As in the article, the batch is masked once and the
model trains on it for thousands of epochs until it predicts every masked word and every IsNext label.
The run directory it leaves (config, vocabulary, checkpoint, metrics, explorer recording) opens with
`glassbert explore runs/demo`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import BertConfig
from .heads import BertForPreTraining
from .pretrain import PretrainingConfig, mask_tokens, pretraining_metrics
from .runfiles import atomic_write_json, check_target_dir, replace_dir
from .threads import set_threads
from .tokenizer import SPECIAL_TOKENS, Tokenizer

# (first sentence, second sentence, IsNext). The first four are the article's; IsNext follows its
# "Actual IsNext" column read with its own rule (False = the pair is connected). The last two are ours.
PAIRS: list[tuple[str, str, bool]] = [
    ("The cat chased the mouse.", "It was a fast chase.", True),
    ("I need to buy milk.", "Please go to the store.", True),
    ("Buy me some milk.", "Please visit the shop.", False),
    ("The mouse ran quickly.", "It was too fast.", True),
    ("The dog barked at the cat.", "It ran up a tree.", True),
    ("The sun is hot.", "The stars are bright.", False),
]
DEFAULT_RECORD = "every=50;epochs=0,1,2,5,10,20,last"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def build_vocab(pairs=PAIRS) -> list[str]:
    """Special tokens first ([PAD] = 0), then every word of the pairs in alphabetical order."""
    vocab = sorted({w for a, b, _ in pairs for w in words(a) + words(b)})
    return list(SPECIAL_TOKENS.values()) + vocab


@dataclass
class DemoResult:
    run_dir: Path
    epochs: int
    final_loss: float
    rows: list[dict]

    @property
    def all_correct(self) -> bool:
        return all(r["words_ok"] and r["is_next_ok"] for r in self.rows)


def make_batch(tok: Tokenizer, seed: int, max_length: int = 14) -> dict[str, torch.Tensor]:
    """The six pairs packed as [CLS] A [SEP] B [SEP] [PAD]…, with up to two words masked in each."""
    firsts = [" ".join(words(a)) for a, _, _ in PAIRS]
    seconds = [" ".join(words(b)) for _, b, _ in PAIRS]
    batch = tok(firsts, seconds, padding="max_length", max_length=max_length)
    # every chosen word becomes [MASK] here (no 10 % random / 10 % kept), so the table reads as the article's
    cfg = PretrainingConfig(max_seq_length=max_length, masked_lm_prob=0.25, max_predictions_per_seq=2,
                            mask_ratio=1.0, random_ratio=0.0, keep_ratio=0.0)
    gen = torch.Generator().manual_seed(seed)
    masked, labels = mask_tokens(batch["input_ids"], batch["attention_mask"], tok, cfg, gen)
    return {
        "input_ids": masked,
        "token_type_ids": batch["token_type_ids"],
        "attention_mask": batch["attention_mask"],
        "labels": labels,
        "next_sentence_label": torch.tensor([0 if is_next else 1 for _, _, is_next in PAIRS]),  # 0 = IsNext
    }


def summarize(model: BertForPreTraining, batch: dict, tok: Tokenizer) -> list[dict]:
    """Figure 17 of the article: masked input, predicted vs actual words and IsNext, per sample."""
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    predicted = out.prediction_logits.argmax(-1).tolist()           # (M,) over all masked positions
    actual = batch["labels"].reshape(-1)[out.masked_index].tolist()
    rows_of = (out.masked_index // batch["input_ids"].shape[1]).tolist()
    nsp_pred = out.seq_relationship_logits.argmax(-1).tolist()
    rows = []
    for i in range(batch["input_ids"].shape[0]):
        mine = [k for k, r in enumerate(rows_of) if r == i]
        pred_ids = [predicted[k] for k in mine]
        true_ids = [actual[k] for k in mine]
        rows.append({
            "sample": i,
            "masked_input": " ".join(tok.convert_ids_to_tokens(batch["input_ids"][i])),
            "predicted_ids": pred_ids, "actual_ids": true_ids,
            "predicted": tok.convert_ids_to_tokens(pred_ids), "actual": tok.convert_ids_to_tokens(true_ids),
            "is_next_predicted": nsp_pred[i] == 0, "is_next_actual": int(batch["next_sentence_label"][i]) == 0,
        })
        rows[-1]["words_ok"] = pred_ids == true_ids
        rows[-1]["is_next_ok"] = rows[-1]["is_next_predicted"] == rows[-1]["is_next_actual"]
    return rows


def format_table(rows: list[dict]) -> str:
    w = max(len(r["masked_input"]) for r in rows)
    header = f"{'#':>2}  {'masked input':{w}}  {'predicted':15} {'actual':15} IsNext pred / actual"
    lines = [header, "-" * len(header)]
    for r in rows:
        ok = "✓" if r["words_ok"] and r["is_next_ok"] else "✗"
        lines.append(f"{r['sample']:>2}  {r['masked_input']:{w}}  {', '.join(r['predicted']):15} "
                     f"{', '.join(r['actual']):15} {str(r['is_next_predicted']):>11} / {str(r['is_next_actual']):6} {ok}")
    return "\n".join(lines)


class _Collate:
    """The demo trains on its one fixed masked batch, as the article does (no re-masking)."""

    def __init__(self, batch: dict):
        self.batch = batch

    def __call__(self, items, generator=None):
        idx = torch.tensor([item["index"] for item in items])
        return {k: v.index_select(0, idx) for k, v in self.batch.items()}


def run_demo(out: str | Path = "runs/demo", epochs: int = 3000, seed: int = 5, lr: float = 0.01,
             record: str | None = DEFAULT_RECORD, progress: bool = True,
             echo: Callable[[str], None] = print, overwrite: bool = False, threads: int | None = None) -> DemoResult:
    """Train the toy in ``out``; an ``out`` that holds files is refused unless ``overwrite`` (then replaced).

    ``threads``: intra-op threads (default: one, as :func:`glassbert.threads.choose_threads` picks for a model
    this small; more only wait for each other)."""
    from .recording import Recorder, RecordCallback
    from .train import Trainer, TrainConfig

    run_dir = check_target_dir(out, overwrite=overwrite)
    replace_dir(run_dir)
    torch.manual_seed(seed)
    tok = Tokenizer.from_vocab(build_vocab(), lowercase=True, model_max_length=14)
    batch = make_batch(tok, seed)
    config = BertConfig.preset("toy", vocab_size=tok.vocab_size)
    chosen = set_threads(threads, config.hidden_size)
    model = BertForPreTraining(config)

    echo(f"Toy BERT of 'Exploring BERT': {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
         f"{config.num_attention_heads} heads of size {config.attention_head_size}, FFN {config.intermediate_size}, "
         f"max length {config.max_position_embeddings}, vocabulary {tok.vocab_size} words, "
         f"{model.num_parameters():,} parameters; {chosen}")
    echo("\nMasked input (the model sees these; it must fill each [MASK] and tell IsNext):")
    for i in range(len(PAIRS)):
        echo(f"  {i}  " + " ".join(tok.convert_ids_to_tokens(batch["input_ids"][i])))
    echo("")

    callbacks = []
    if record:
        recorder = Recorder(run_dir, batch, tok, record, texts=[f"{a} {b}" for a, b, _ in PAIRS],
                            max_bytes=50_000_000)
        callbacks.append(RecordCallback(recorder))  # one step per epoch: the whole dataset is one batch
    train_cfg = TrainConfig(out_dir=run_dir, batch_size=len(PAIRS), lr=lr, weight_decay=0.0,
                            schedule="constant", max_grad_norm=None, epochs=epochs, seed=seed,
                            log_every=10, save_every=max(1, epochs // 4), progress=progress,
                            overwrite=True, shuffle=False)
    dataset = [{"index": i} for i in range(len(PAIRS))]
    trainer = Trainer(model, dataset, _Collate(batch), train_cfg, metrics_fn=pretraining_metrics, callbacks=callbacks)
    summary = trainer.fit()

    rows = summarize(model, batch, tok)
    model.save_pretrained(run_dir, tokenizer=tok)
    final_loss = float(summary.train.get("loss", float("nan"))) if summary.train else float("nan")
    atomic_write_json(run_dir / "demo.json", {
        "pairs": [{"first": a, "second": b, "is_next": n} for a, b, n in PAIRS],
        "epochs": epochs, "seed": seed, "lr": lr, "final_loss": final_loss, "summary": rows}, indent=2)
    echo(f"\nAfter {epochs} epochs (loss {final_loss:.4f}), the article's summary table:\n")
    echo(format_table(rows))
    result = DemoResult(run_dir, epochs, final_loss, rows)
    correct = sum(r["words_ok"] and r["is_next_ok"] for r in rows)
    echo(f"\n{correct}/{len(rows)} samples fully correct. Run directory: {run_dir}")
    echo(f"  metrics: {run_dir / 'metrics.jsonl'}, plot: {run_dir / 'metrics.png'}")
    if record:
        echo(f"  explore it in the browser:  glassbert explore {run_dir}")
    return result


__all__ = ["run_demo", "PAIRS", "build_vocab", "make_batch", "summarize", "DemoResult"]
