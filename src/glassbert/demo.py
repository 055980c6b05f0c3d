"""`glassbert demo`: the six-pair toy BERT of the article "Deep Learning 101: Lesson 31: Exploring BERT"
(Muneeb S. Ahmad), pretrained on the CPU.

Six sentence pairs, a word-level vocabulary, up to two masked words per pair, hidden size 7, two layers
of five heads of size 4, sequences of 14 tokens. As in the article, the batch is masked once and the
model trains on it for thousands of epochs until it predicts every masked word and every IsNext label.
The run directory it leaves (config, vocabulary, checkpoint, metrics, explorer recording) opens with
`glassbert explore runs/demo`.

``arch="albert"`` (`glassbert demo --arch albert`) trains the same six pairs on the ALBERT toy instead: word
embeddings of width E = 4 projected to the hidden size 8, three layers that all run one shared set of weights,
and sentence-order prediction in place of NSP: every second pair is shown with its two sentences swapped
(label Swapped), the others in order (InOrder), and the model must tell which. Its run goes to runs/demo-albert.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import AlbertConfig, BertConfig
from .pretrain import PretrainingConfig, mask_tokens, pretraining_metrics
from .errors import InputError
from .registry import Architecture, architecture
from .runfiles import atomic_write_json, check_target_dir, replace_dir
from .threads import set_threads
from .tokenizer import IGNORE_INDEX, SPECIAL_TOKENS, Tokenizer

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
# The words masked in each pair ("--masks article", the default): the article's figure 6 for the first four
# (sample 0: "the [MASK] chased the mouse [SEP] it was a fast [MASK]" → cat, chase), its figure 1 for the sixth
# ("The [MASK] is hot. The [MASK] are bright."); the fifth pair is ours, and so are its masks. "--masks random"
# draws up to two words per pair with the seed instead.
ARTICLE_MASKS: list[tuple[str, str]] = [("cat", "chase"), ("buy", "go"), ("milk", "shop"), ("mouse", "fast"),
                                        ("dog", "tree"), ("sun", "stars")]
MASKS = ("article", "random")
DEFAULT_RECORD = "every=100;epochs=0,1,2,5,10,20,50,last"  # 37 snapshots: the exported page stays under 5 MB


def demo_arch(name: str) -> Architecture:
    """The architecture ``--arch NAME`` names; its record's ``demo`` says how its toy is named and trained."""
    return architecture(name)


def _sop(arch: str) -> bool:
    """Whether ``arch``'s pair head predicts sentence order (ALBERT): then every second pair is swapped."""
    return architecture(arch).pair_task == "sop"


def swapped(i: int) -> bool:
    """ALBERT's demo shows every second pair (1, 3, 5) with its sentences swapped."""
    return i % 2 == 1


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
    arch: str = "bert"

    @property
    def all_correct(self) -> bool:
        key = architecture(self.arch).demo.key
        return all(r["words_ok"] and r[f"{key}_ok"] for r in self.rows)


def article_masks(tok: Tokenizer, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, MLM labels) with the words of :data:`ARTICLE_MASKS` masked (each at its one place in
    its pair); labels are IGNORE_INDEX (-100) elsewhere."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, chosen in enumerate(ARTICLE_MASKS):
        tokens = tok.convert_ids_to_tokens(input_ids[i])
        for word in chosen:
            if tokens.count(word) != 1:
                raise InputError(f"pair {i}: the masked word {word!r} is not in it once")
            labels[i, tokens.index(word)] = input_ids[i, tokens.index(word)]
    masked = torch.where(labels != IGNORE_INDEX, torch.full_like(input_ids, tok.mask_token_id), input_ids)
    return masked, labels


def make_batch(tok: Tokenizer, seed: int, max_length: int = 14, arch: str = "bert",
               masks: str = "article") -> dict[str, torch.Tensor]:
    """The six pairs packed as [CLS] A [SEP] B [SEP] [PAD]…, with two words masked in each: the article's
    (``masks="article"``) or up to two drawn with ``seed`` (``"random"``).
    BERT: labelled IsNext as the article reads them; ALBERT: every second pair swapped (SOP label 1)."""
    order = [swapped(i) if _sop(arch) else False for i in range(len(PAIRS))]
    firsts = [" ".join(words(b if flip else a)) for (a, b, _), flip in zip(PAIRS, order)]
    seconds = [" ".join(words(a if flip else b)) for (a, b, _), flip in zip(PAIRS, order)]
    batch = tok(firsts, seconds, padding="max_length", max_length=max_length)
    # every chosen word becomes [MASK] here (no 10 % random / 10 % kept), so the table reads as the article's
    cfg = PretrainingConfig(max_seq_length=max_length, masked_lm_prob=0.25, max_predictions_per_seq=2,
                            mask_ratio=1.0, random_ratio=0.0, keep_ratio=0.0)
    if masks not in MASKS:
        raise InputError(f"--masks {masks!r}: choose one of {', '.join(MASKS)}")
    if masks == "article":
        masked, labels = article_masks(tok, batch["input_ids"])
    else:
        gen = torch.Generator().manual_seed(seed)
        masked, labels = mask_tokens(batch["input_ids"], batch["attention_mask"], tok, cfg, gen)
    if _sop(arch):
        pair_labels = {"sentence_order_label": torch.tensor([int(flip) for flip in order])}  # 1 = swapped
    else:
        pair_labels = {"next_sentence_label": torch.tensor([0 if is_next else 1 for _, _, is_next in PAIRS])}  # 0 = IsNext
    return {
        "input_ids": masked,
        "token_type_ids": batch["token_type_ids"],
        "attention_mask": batch["attention_mask"],
        "labels": labels,
        **pair_labels,
    }


def summarize(model: torch.nn.Module, batch: dict, tok: Tokenizer,
              arch: str = "bert") -> list[dict]:
    """Figure 17 of the article: masked input, predicted vs actual words and IsNext (ALBERT: InOrder), per sample."""
    a = architecture(arch)
    key = a.demo.key
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    predicted = out.prediction_logits.argmax(-1).tolist()           # (M,) over all masked positions
    actual = batch["labels"].reshape(-1)[out.masked_index].tolist()
    rows_of = (out.masked_index // batch["input_ids"].shape[1]).tolist()
    nsp_pred = out.seq_relationship_logits.argmax(-1).tolist()      # NSP or SOP: 0 = IsNext / InOrder
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
            f"{key}_predicted": nsp_pred[i] == 0, f"{key}_actual": int(batch[a.pair_label][i]) == 0,
        })
        rows[-1]["words_ok"] = pred_ids == true_ids
        rows[-1][f"{key}_ok"] = rows[-1][f"{key}_predicted"] == rows[-1][f"{key}_actual"]
    return rows


def format_table(rows: list[dict], arch: str = "bert") -> str:
    key, name = architecture(arch).demo.key, architecture(arch).pair_names[0]
    w = max(len(r["masked_input"]) for r in rows)
    header = f"{'#':>2}  {'masked input':{w}}  {'predicted':15} {'actual':15} {name} pred / actual"
    lines = [header, "-" * len(header)]
    for r in rows:
        ok = "✓" if r["words_ok"] and r[f"{key}_ok"] else "✗"
        lines.append(f"{r['sample']:>2}  {r['masked_input']:{w}}  {', '.join(r['predicted']):15} "
                     f"{', '.join(r['actual']):15} {str(r[f'{key}_predicted']):>{len(name) + 5}} / "
                     f"{str(r[f'{key}_actual']):6} {ok}")
    return "\n".join(lines)


class _Collate:
    """The demo trains on its one fixed masked batch, as the article does (no re-masking)."""

    def __init__(self, batch: dict):
        self.batch = batch

    def __call__(self, items, generator=None):
        idx = torch.tensor([item["index"] for item in items])
        return {k: v.index_select(0, idx) for k, v in self.batch.items()}


def run_demo(out: str | Path | None = None, epochs: int | None = None, seed: int | None = None,
             lr: float | None = None, record: str | None = DEFAULT_RECORD, progress: bool = True,
             echo: Callable[[str], None] = print, overwrite: bool = False, threads: int | None = None,
             arch: str = "bert", masks: str = "article", precision: str = "fp32") -> DemoResult:
    """Train the toy of ``arch`` (bert | albert) in ``out``; an ``out`` that holds files is refused unless
    ``overwrite`` (then replaced). ``masks``: the article's masked words (default) or random ones. ``out``, ``epochs``, ``seed`` and ``lr`` default to the arch's own
    (bert: runs/demo, 3000 epochs, seed 5, lr 0.01; albert: see glassbert.registry's ``DemoSettings``).

    ``precision``: fp32 (default: the toy's numbers the same on every machine), bf16 or auto (bf16 autocast where
    the hardware has fast bf16; glassbert.precision).

    ``threads``: intra-op threads (default: one, as :func:`glassbert.threads.choose_threads` picks for a model
    this small; more only wait for each other)."""
    from .recording import Recorder, RecordCallback
    from .train import Trainer, TrainConfig

    a = demo_arch(arch)
    out = a.demo.out if out is None else out
    epochs = a.demo.epochs if epochs is None else epochs
    seed = a.demo.seed if seed is None else seed
    lr = a.demo.lr if lr is None else lr
    run_dir = check_target_dir(out, overwrite=overwrite)
    replace_dir(run_dir)
    torch.manual_seed(seed)
    tok = Tokenizer.from_vocab(build_vocab(), lowercase=True, model_max_length=14)
    batch = make_batch(tok, seed, arch=arch, masks=masks)
    config = a.config_class.preset("toy", vocab_size=tok.vocab_size)
    chosen = set_threads(threads, config.hidden_size)
    model = a.pretraining(config)

    echo(f"{a.demo.title}: {_describe(config)}, max length {config.max_position_embeddings}, "
         f"vocabulary {tok.vocab_size} words, {model.num_parameters():,} parameters; {chosen}")
    echo(f"\nMasked input (the model sees these; it must fill each [MASK] and tell {_task(a)}):")
    for i in range(len(PAIRS)):
        echo(f"  {i}  " + " ".join(tok.convert_ids_to_tokens(batch["input_ids"][i])))
    echo("")

    callbacks = []
    if record:
        texts = [f"{y} {x}" if _sop(arch) and swapped(i) else f"{x} {y}" for i, (x, y, _) in enumerate(PAIRS)]
        recorder = Recorder(run_dir, batch, tok, record, texts=texts, max_bytes=50_000_000)
        callbacks.append(RecordCallback(recorder))  # one step per epoch: the whole dataset is one batch
    train_cfg = TrainConfig(out_dir=run_dir, batch_size=len(PAIRS), lr=lr, weight_decay=0.0,
                            schedule="constant", max_grad_norm=None, epochs=epochs, seed=seed,
                            log_every=10, save_every=max(1, epochs // 4), progress=progress,
                            overwrite=True, shuffle=False, precision=precision)
    dataset = [{"index": i} for i in range(len(PAIRS))]
    trainer = Trainer(model, dataset, _Collate(batch), train_cfg, metrics_fn=pretraining_metrics, callbacks=callbacks)
    summary = trainer.fit()

    rows = summarize(model, batch, tok, arch)
    model.save_pretrained(run_dir, tokenizer=tok)
    final_loss = float(summary.train.get("loss", float("nan"))) if summary.train else float("nan")
    if _sop(arch):
        pairs = [{"first": y if swapped(i) else x, "second": x if swapped(i) else y, "in_order": not swapped(i)}
                 for i, (x, y, _) in enumerate(PAIRS)]
    else:
        pairs = [{"first": x, "second": y, "is_next": n} for x, y, n in PAIRS]
    atomic_write_json(run_dir / "demo.json", {
        **({"arch": arch} if arch != "bert" else {}), "pairs": pairs,
        "epochs": epochs, "seed": seed, "lr": lr, "masks": masks, "final_loss": final_loss, "summary": rows}, indent=2)
    echo(f"\nAfter {epochs} epochs (loss {final_loss:.4f}), the article's summary table:\n")
    echo(format_table(rows, arch))
    result = DemoResult(run_dir, epochs, final_loss, rows, arch)
    correct = sum(r["words_ok"] and r[f"{a.demo.key}_ok"] for r in rows)
    echo(f"\n{correct}/{len(rows)} samples fully correct. Run directory: {run_dir}")
    echo(f"  metrics: {run_dir / 'metrics.jsonl'}, plot: {run_dir / 'metrics.png'}")
    if record:
        echo(f"  explore it in the browser:  glassbert explore {run_dir}")
    return result


def _describe(config: BertConfig) -> str:
    """The toy's shape in words; ALBERT's says what makes it ALBERT (E < H, the shared layers)."""
    heads = f"{config.num_attention_heads} heads of size {config.attention_head_size}, FFN {config.intermediate_size}"
    if isinstance(config, AlbertConfig):
        return (f"word embeddings of width E = {config.embedding_size} projected to hidden H = {config.hidden_size}, "
                f"{config.num_hidden_layers} layers that share one set of weights, {heads}")
    return f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, {heads}"


def _task(a: Architecture) -> str:
    return "IsNext" if a.pair_task == "nsp" else f"whether its sentences are {a.pair_names[0]} or {a.pair_names[1]}"


__all__ = ["run_demo", "PAIRS", "build_vocab", "make_batch", "summarize", "DemoResult"]
