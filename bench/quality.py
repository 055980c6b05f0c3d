"""Pretraining quality per wall-clock minute: glassbert's `pretrain` (its defaults) against transformers' usual
recipe, in the same time budget, on the same text, scored on the same held-out masked set.

    python bench/quality.py                          # 10 minutes per run, the mini preset, State of the Union
    python bench/quality.py --minutes 2 --preset tiny          # a quick look
    python bench/quality.py --downstream             # then fine-tune the pretrained model vs random init
    python bench/quality.py --glassbert-option masked_lm_prob=0.3 --label mask30   # an arm (a) variant (ablations)

(a) glassbert: `glassbert.pretrain.pretrain` with PretrainArgs' defaults (what `glassbert pretrain --minutes M`
    does; only the intermediate evaluations are switched off, as they would be paid from the budget). Its word
    embeddings start from the training text's co-occurrence vectors (--init-embeddings ppmi), whose seconds are
    paid from its budget; `--glassbert-option init_embeddings=random --label random-start` starts as BERT does.
(b) transformers: BertForPreTraining of the same size, DataCollatorForLanguageModeling (15 %, 80/10/10) over the
    same NSP pairs (glassbert's instances: same held-out documents, same vocabulary), torch AdamW (weight decay
    0.01 but not on biases/LayerNorm, as transformers' Trainer), get_linear_schedule_with_warmup with glassbert's
    lr, batch size and warmup ratio; its total steps are the budget divided by the time of a calibration step
    (15 s of steps after 3 warm-up steps, on a copy that is then thrown away, off the clock) just before the
    run: a linear schedule needs a step count and the budget is in minutes. Gradients clipped at 1.0 (the Trainer's default).

The two take turns (--turn seconds each), each on its own clock that runs only during its turns, so a machine
whose load changes slows both alike. Each arm's weights are kept at fixed fractions of its budget (a copy,
not an evaluation: nothing is scored inside the budget); afterwards every copy is scored by transformers'
BertForPreTraining on ONE fixed held-out masked set (the held-out documents' pairs, masked once with a fixed
seed): MLM accuracy, MLM loss (mean over masked tokens), perplexity = exp(loss), NSP accuracy. Prints the
table, writes OUT/quality.json and OUT/quality.png (held-out MLM loss against minutes).

--downstream: fine-tunes (a)'s model and the same architecture from random initialisation with one recipe on
the fine-food reviews and the spam corpus (`glassbert data fetch fine-foods`, `... spam`), once per seed
(--ft-seeds, default 3: each seed its own 2,000 training rows, 500 validation rows and random init), keeps the
epoch that does best on the validation rows, and prints the test accuracy of both (mean ± sd), the gain of the
same seed's pair and the majority baseline. --probe first fits a linear probe on every layer's frozen,
mean-pooled features of both arms, beside a bag of word pieces: what pretraining put in the features, without
fine-tuning's noise.

    python bench/quality.py --downstream-from runs/quality/glassbert --probe --ft-data fine-foods
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from glassbert.modeldir import resolve_model_path  # noqa: E402
from glassbert.config import BertConfig  # noqa: E402
from glassbert.corpus import read_texts  # noqa: E402
from glassbert.errors import GlassbertError  # noqa: E402
from glassbert.heads import BertForPreTraining  # noqa: E402
from glassbert.pretrain.job import PretrainArgs, build_datasets, pretrain  # noqa: E402
from glassbert.tokenizer import IGNORE_INDEX, Tokenizer  # noqa: E402
from glassbert.threads import set_threads  # noqa: E402
from glassbert.train import Callback  # noqa: E402

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)  # of the budget, where each arm's weights are kept


def load_note() -> str:
    """The machine's load and CPU, for every printed number."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    kind = "AMX" if "amx_bf16" in flags else "AVX2" if "avx2" in flags else platform.processor() or "?"
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min); {os.cpu_count()} cores, {kind}; torch threads {torch.get_num_threads()}"


class TurnClock:
    """A clock that runs only while its arm has the turn: pause() / go() around the other arm's turns."""

    def __init__(self) -> None:
        self.spent, self.since = 0.0, None

    def go(self) -> None:
        self.since = time.perf_counter()

    def pause(self) -> None:
        if self.since is not None:
            self.spent += time.perf_counter() - self.since
            self.since = None

    def __call__(self) -> float:
        return self.spent + (time.perf_counter() - self.since if self.since is not None else 0.0)


@dataclass
class Snapshots:
    """Weights kept at fixed fractions of an arm's budget: (minutes, step, state dict on the CPU)."""

    budget_s: float
    kept: list[tuple[float, int, dict]] = field(default_factory=list)

    def due(self, elapsed: float) -> bool:
        return len(self.kept) < len(FRACTIONS) and elapsed >= FRACTIONS[len(self.kept)] * self.budget_s

    def keep(self, elapsed: float, step: int, model: torch.nn.Module) -> None:
        self.kept.append((elapsed / 60, step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}))


class TransformersArm:
    """transformers' usual pretraining recipe, run in turns: BertForPreTraining, DataCollatorForLanguageModeling,
    AdamW, get_linear_schedule_with_warmup (total steps estimated by :meth:`calibrate`)."""

    def __init__(self, config: BertConfig, vocab_dir: Path, items: list[dict], args: PretrainArgs, budget_s: float):
        import transformers

        self.tf = transformers
        keep = {k: v for k, v in config.to_dict().items() if k not in ("architectures", "model_type", "classifier_pooling")}
        torch.manual_seed(args.seed)
        self.model = transformers.BertForPreTraining(transformers.BertConfig(**keep)).train()
        tokenizer = transformers.BertTokenizerFast.from_pretrained(str(vocab_dir))
        self.collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)
        decay = [p for n, p in self.model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
        rest = [p for n, p in self.model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                            {"params": rest, "weight_decay": 0.0}], lr=args.lr)
        self.items, self.args, self.budget_s = items, args, budget_s
        self.rng = random.Random(args.seed)
        self.order: list[int] = []
        self.clock = TurnClock()
        self.snapshots = Snapshots(budget_s)
        self.snapshots.keep(0.0, 0, self.model)  # the 0.0 fraction: the initial weights
        self.step, self.scheduler, self.estimated_steps, self.calibration_steps = 0, None, None, None

    def calibrate(self, warmup: int = 3, seconds: float = 15.0, min_steps: int = 10) -> None:
        """Time steps of a throwaway copy (same load as now) after ``warmup`` untimed ones (the first steps
        allocate and are slower), for ``seconds`` and at least ``min_steps``; then plan the linear schedule for
        the steps the budget holds at that pace. (Five steps with the first one timed planned 1,009 steps for a
        10-minute budget at batch 8 that then held 1,693: the schedule reached 0 at 60 % of the budget.)"""

        model = copy.deepcopy(self.model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)  # the copy's: its step is timed too

        def step() -> None:
            model(**self._batch()).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(warmup):
            step()
        start, steps = time.perf_counter(), 0
        while steps < min_steps or time.perf_counter() - start < seconds:
            step()
            steps += 1
        per_step = (time.perf_counter() - start) / steps
        self.calibration_steps = steps
        self.order, self.rng = [], random.Random(self.args.seed)  # the run starts from the first batch again
        self.estimated_steps = max(1, round(self.budget_s / per_step))
        warmup = round(self.args.warmup_ratio * self.estimated_steps)
        self.scheduler = self.tf.get_linear_schedule_with_warmup(self.optimizer, warmup, self.estimated_steps)

    @property
    def done(self) -> bool:
        return self.clock() >= self.budget_s

    def _batch(self) -> dict:
        if len(self.order) < self.args.batch_size:  # a new epoch, shuffled
            self.order = list(range(len(self.items)))
            self.rng.shuffle(self.order)
        picked, self.order = self.order[:self.args.batch_size], self.order[self.args.batch_size:]
        features = [{"input_ids": self.items[i]["input_ids"], "token_type_ids": self.items[i]["token_type_ids"]}
                    for i in picked]
        batch = self.collator(features)
        batch["next_sentence_label"] = torch.tensor([self.items[i]["next_sentence_label"] for i in picked])
        return batch

    def run_for(self, seconds: float) -> None:
        """Train for ``seconds`` of this arm's clock (or to its deadline)."""
        self.clock.go()
        end = self.clock() + seconds
        while self.clock() < end and not self.done:
            batch = self._batch()
            loss = self.model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
            while self.snapshots.due(self.clock()):
                self.snapshots.keep(self.clock(), self.step, self.model)
        self.clock.pause()


class Turns(Callback):
    """Inside glassbert's run: its clock is a TurnClock; every ``turn`` seconds it pauses and the other arm
    trains for ``turn`` seconds; its weights are kept at the budget's fractions."""

    def __init__(self, other: TransformersArm, turn: float, budget_s: float) -> None:
        self.other, self.turn = other, turn
        self.clock = TurnClock()
        self.snapshots = Snapshots(budget_s)
        self.turn_started = 0.0

    def on_train_begin(self, trainer) -> None:
        trainer.clock = self.clock
        # the 0.0 fraction: the initial weights, after the setup that is charged to the budget (the embedding init)
        self.snapshots.keep(trainer.config.setup_seconds, 0, trainer.model)
        self.clock.go()

    def on_step_end(self, trainer, loss) -> None:
        while self.snapshots.due(trainer.elapsed_now()):
            self.snapshots.keep(trainer.elapsed_now(), trainer.state.step, trainer.model)
        if self.clock() - self.turn_started >= self.turn and not self.other.done:
            self.clock.pause()
            self.other.run_for(self.turn)
            self.clock.go()
            self.turn_started = self.clock()


@torch.no_grad()
def score(state: dict, hf_model, batches: list[dict]) -> dict:
    """Held-out MLM accuracy/loss (over every masked token)/perplexity and NSP accuracy of weights ``state``,
    computed by transformers' BertForPreTraining."""
    hf_model.load_state_dict(state, strict=False)
    hf_model.eval()
    right = total = nsp_right = pairs = 0
    loss_sum = 0.0
    for batch in batches:
        out = hf_model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                       attention_mask=batch["attention_mask"])
        masked = batch["labels"] != IGNORE_INDEX
        logits, targets = out.prediction_logits[masked], batch["labels"][masked]
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum").item()
        right += (logits.argmax(-1) == targets).sum().item()
        total += int(masked.sum())
        if "next_sentence_label" in batch:  # held-out pairs (not chunks)
            nsp_right += (out.seq_relationship_logits.argmax(-1) == batch["next_sentence_label"]).sum().item()
            pairs += len(batch["next_sentence_label"])
    loss = loss_sum / total
    return {"mlm_acc": right / total, "mlm_loss": loss, "perplexity": math.exp(loss),
            "nsp_acc": nsp_right / pairs if pairs else math.nan}


def make_vocab(corpus: Path, out: Path, text_column: str | None = None) -> Path:
    """The bench's vocabulary: `glassbert vocab train --size 8000` on the corpus, made once."""
    if not (out / "tokenizer.json").is_file():
        tok = Tokenizer.train(read_texts(corpus, text_column), vocab_size=8000, files=False, show_progress=False)
        tok.save_pretrained(out)
    return out


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE for PretrainArgs fields; a VALUE that reads as JSON (0.3, 64, true) is taken as such."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def plot(curves: dict[str, list[tuple[float, dict]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for label, points in curves.items():
        ax.plot([m for m, _ in points], [s["mlm_loss"] for _, s in points], marker="o", label=label)
    ax.set_xlabel("wall-clock minutes of training (each arm on its own clock)")
    ax.set_ylabel("held-out MLM loss (mean over masked tokens)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


DATA_SETS = {"fine-foods": ("review", "score"), "spam": ("text", "label")}


def split_rows(name: str, seed: int, train_rows: int | None, val_rows: int, out: Path) -> tuple[Path, Path]:
    """A seeded sample of train.csv's rows: ``train_rows`` to fine-tune on (all the rest when None) and, apart
    from them, ``val_rows`` to choose the epoch by. test.csv stays whole and is read once, at the end."""
    with open(ROOT / "data" / name / "train.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), reader.fieldnames
    random.Random(seed).shuffle(rows)
    val, rest = rows[:val_rows], rows[val_rows:]
    files = []
    for part, chosen in (("train", rest[:train_rows] if train_rows else rest), ("val", val)):
        path = out / f"{name}-{part}-seed{seed}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(chosen)
        files.append(path)
    return files[0], files[1]


def test_accuracy(model_dir: Path, name: str, max_length: int) -> float:
    """Accuracy of a fine-tuned classifier directory on the data set's whole test.csv."""
    from glassbert.registry import load_model
    from glassbert.tasks.classification import encode_classification, evaluate_classification, read_classification

    model = load_model(model_dir).eval()
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    text_column, label_column = DATA_SETS[name]
    data = read_classification(ROOT / "data" / name / "test.csv", text_column, label_column, labels=names)
    encoded = encode_classification(data, Tokenizer.from_pretrained(model_dir), max_length)
    with torch.inference_mode():
        return evaluate_classification(model, encoded, names).metrics["accuracy"]


def downstream(model_dir: Path, config: BertConfig, tok: Tokenizer, out: Path, args) -> list[dict]:
    """Fine-tune the pretrained model and a random initialisation of its architecture on each data set, once
    per seed: each seed draws its own training rows, validation rows and random init. The epoch is chosen on
    the validation rows; the test rows score the chosen model."""
    from glassbert.tasks.job import FinetuneArgs, finetune

    rows = []
    for name in args.ft_data:
        if not (ROOT / "data" / name / "train.csv").is_file():
            print(f"{ROOT / 'data' / name}: missing (glassbert data fetch {name}); skipped")
            continue
        text_column, label_column = DATA_SETS[name]
        with open(ROOT / "data" / name / "test.csv", newline="", encoding="utf-8") as f:
            labels = [row[label_column] for row in csv.DictReader(f)]
        row = {"data": name, "majority": max(labels.count(x) for x in set(labels)) / len(labels),
               "test": len(labels), "seeds": [], "pretrained": [], "random init": []}
        for seed in range(args.seed, args.seed + args.ft_seeds):
            train, val = split_rows(name, seed, args.ft_train_limit, args.ft_val, out)
            random_dir = out / f"random-init-seed{seed}"
            torch.manual_seed(seed)
            BertForPreTraining(config).save_pretrained(random_dir, tokenizer=tok)
            arms = [("pretrained", model_dir)] + ([] if args.no_random_init else [("random init", random_dir)])
            row["seeds"].append(seed)
            for arm, model in arms:
                t0 = time.perf_counter()
                run = out / f"{name}-{arm.replace(' ', '-')}-seed{seed}"
                finetune(FinetuneArgs(model=str(model), train=str(train), eval=str(val), out=str(run),
                                      text_column=text_column, label_column=label_column, epochs=args.ft_epochs,
                                      lr=args.ft_lr, batch_size=32, max_length=args.ft_max_length, seed=seed,
                                      pooling=args.ft_pooling, freeze=args.ft_freeze, overwrite=True,
                                      progress=False, quiet=True))
                row[arm].append(test_accuracy(run, name, args.ft_max_length))
                print(f"  {name} seed {seed}: {arm}: test accuracy {row[arm][-1]:.3f}  "
                      f"({(time.perf_counter() - t0) / 60:.1f} min; {load_note()})", flush=True)
        rows.append(row)
    return rows


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:  # one seed: no spread to give
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def print_downstream(rows: list[dict], args) -> None:
    print(f"\nfine-tuned up to {args.ft_epochs} epochs (the epoch chosen on {args.ft_val} validation rows), lr "
          f"{args.ft_lr}, batch 32, {args.ft_max_length} tokens, pooling {args.ft_pooling or 'pooler'}, freeze "
          f"{args.ft_freeze}, {args.ft_train_limit or 'all other'} training rows; test accuracy, mean ± sd over "
          f"{args.ft_seeds} seeds (each its own training rows and random init); gain: pretrained − random init "
          "of the same seed:")
    print(f"{'data':<12} {'test rows':>9} {'majority':>9} {'random init':>14} {'pretrained':>14} {'gain':>16} "
          f"{'wins':>5}")
    for row in rows:
        gains = [a - b for a, b in zip(row["pretrained"], row["random init"])]
        wins = f"{sum(g > 0 for g in gains)}/{len(gains)}" if gains else "-"
        print(f"{row['data']:<12} {row['test']:9d} {row['majority']:9.3f} {mean_sd(row['random init']):>14} "
              f"{mean_sd(row['pretrained']):>14} {mean_sd(gains):>16} "
              f"{wins:>5}")


def read_split(path: Path, name: str) -> tuple[list[str], list[str]]:
    text_column, label_column = DATA_SETS[name]
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[text_column] for r in rows], [r[label_column] for r in rows]


def layer_features(model, tok: Tokenizer, texts: list[str], max_length: int) -> list[torch.Tensor]:
    """Mean-pooled (over real tokens) output of the embeddings and of every layer: (L + 1) × (N, H)."""
    from glassbert.model import pool

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    feats: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            batch = tok([texts[i] for i in idx], padding=True, max_length=max_length, warn_truncation=False)
            out = model(**batch)
            layers = [out.embedding_output, *out.encoder_outputs]
            if not feats:
                feats = [torch.zeros(len(texts), h.shape[-1], dtype=torch.float64) for h in layers]
            for f, h in zip(feats, layers):
                f[idx] = pool(h.float(), batch["attention_mask"], "mean").double()
    return feats


def linear_probe(train: torch.Tensor, y_train: torch.Tensor, val: torch.Tensor, y_val: torch.Tensor,
                 test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Logistic regression on standardised features (L2 strength chosen on the validation rows): test accuracy."""
    mu, sd = train.mean(0), train.std(0) + 1e-6
    train, val, test = ((x - mu) / sd for x in (train, val, test))
    n_classes = int(max(y_train.max(), y_val.max(), y_test.max())) + 1

    def fit(l2: float) -> torch.Tensor:
        w = torch.zeros(train.shape[1] + 1, n_classes, dtype=torch.float64, requires_grad=True)
        x = torch.cat([train, torch.ones(len(train), 1, dtype=torch.float64)], 1)
        opt = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ w, y_train) + l2 * (w[:-1] ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        return w.detach()

    def accuracy(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        x = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        return float(((x @ w).argmax(1) == y).double().mean())

    with torch.enable_grad():
        best = max((fit(l2) for l2 in (1e-4, 1e-3, 1e-2, 1e-1)), key=lambda w: accuracy(w, val, y_val))
    return accuracy(best, test, y_test)


def probe(model_dir: Path, config: BertConfig, tok: Tokenizer, out: Path, args) -> list[dict]:
    """Frozen features, no fine-tuning: a linear probe of each layer's mean-pooled output, pretrained against
    random init, and a bag of word pieces on the same tokenizer (what a classifier can learn with no
    pretraining at all). Seed --seed's training and validation rows; the whole test set."""
    from glassbert.registry import load_as
    from glassbert.model import BertModel

    pretrained = load_as(model_dir).eval()
    torch.manual_seed(args.seed)
    random_init = BertModel(config).eval()
    rows = []
    for name in args.ft_data:
        if not (ROOT / "data" / name / "train.csv").is_file():
            continue
        train, val = split_rows(name, args.seed, args.ft_train_limit, args.ft_val, out)
        splits = [read_split(path, name) for path in (train, val, ROOT / "data" / name / "test.csv")]
        classes = sorted(set(splits[0][1]))
        ys = [torch.tensor([classes.index(v) if v in classes else 0 for v in labels]) for _, labels in splits]
        row = {"data": name, "layers": {}}
        for arm, model in (("pretrained", pretrained), ("random init", random_init)):
            feats = [layer_features(model, tok, texts, args.ft_max_length) for texts, _ in splits]
            row["layers"][arm] = [linear_probe(tr, ys[0], va, ys[1], te, ys[2]) for tr, va, te in zip(*feats)]
        ids = [[tok([t], max_length=args.ft_max_length, warn_truncation=False)["input_ids"][0] for t in texts]
               for texts, _ in splits]
        bags = [torch.zeros(len(rows_ids), config.vocab_size, dtype=torch.float64) for rows_ids in ids]
        for bag, rows_ids in zip(bags, ids):
            for i, row_ids in enumerate(rows_ids):
                bag[i, row_ids] = 1.0
        common = bags[0].sum(0) >= 3  # word pieces seen in at least 3 training rows
        row["bag of words"] = linear_probe(*(x for pair in zip((b[:, common] for b in bags), ys) for x in pair))
        rows.append(row)
        print(f"  {name}: probed {len(row['layers']['pretrained'])} layers of both arms ({load_note()})", flush=True)
    return rows


def print_probe(rows: list[dict], args) -> None:
    for row in rows:
        print(f"\n{row['data']}: linear probe of frozen, mean-pooled features (test accuracy; {args.ft_train_limit} "
              f"training rows, L2 chosen on {args.ft_val} validation rows); bag of word pieces "
              f"{row['bag of words']:.3f}")
        print(f"{'layer':<12} {'pretrained':>11} {'random init':>12}")
        for i, (a, b) in enumerate(zip(row["layers"]["pretrained"], row["layers"]["random init"])):
            print(f"{'embeddings' if i == 0 else f'layer {i}':<12} {a:11.3f} {b:12.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each arm (default 10)")
    p.add_argument("--preset", default="mini")
    p.add_argument("--corpus", type=Path, default=ROOT / "data" / "sotu")
    p.add_argument("--text-column", default=None, help="the text column of a CSV/JSONL corpus (as pretrain's)")
    p.add_argument("--vocab", type=Path, default=None, help="default: made once in OUT/vocab (size 8000)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "quality")
    p.add_argument("--turn", type=float, default=30.0, help="seconds of each turn")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: glassbert's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--glassbert-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a PretrainArgs field for arm (a), e.g. masked_lm_prob=0.3 (ablations)")
    p.add_argument("--label", default="", help="a name for this arm (a) variant in the output")
    p.add_argument("--no-transformers", action="store_true", help="arm (a) alone (ablations against each other)")
    p.add_argument("--heldout", choices=("pairs", "chunks"), default="pairs",
                   help="the fixed held-out set: NSP pairs [CLS] A [SEP] B [SEP] (default), or single chunks "
                        "[CLS] text [SEP] (task MLM's inputs: fair to arms trained without pairs, e.g. --task mlm)")
    p.add_argument("--downstream", action="store_true")
    p.add_argument("--ft-epochs", type=int, default=10,
                   help="at most this many epochs; the best on the validation rows is kept (default 10)")
    p.add_argument("--ft-train-limit", type=int, default=2000,
                   help="fine-tune on a seeded sample of this many training rows (default 2000; 0: all the rest)")
    p.add_argument("--ft-val", type=int, default=500,
                   help="training rows set apart (never trained on) to choose the epoch by (default 500)")
    p.add_argument("--ft-seeds", type=int, default=3,
                   help="fine-tune each arm this many times: seeds --seed, --seed + 1, … (default 3)")
    p.add_argument("--ft-max-length", type=int, default=128)
    p.add_argument("--downstream-from", type=Path, default=None, metavar="RUN",
                   help="skip pretraining: fine-tune this glassbert pretraining run (and its random init)")
    p.add_argument("--ft-lr", type=float, default=3e-4,
                   help="fine-tuning peak lr (default 3e-4: models this small and this young learn slowly at 5e-5)")
    p.add_argument("--ft-data", nargs="+", choices=("fine-foods", "spam"), default=["fine-foods", "spam"])
    p.add_argument("--no-random-init", action="store_true", help="fine-tune the pretrained model only")
    p.add_argument("--probe", action="store_true",
                   help="before fine-tuning: a linear probe of every layer's frozen features, both arms, and a bag "
                        "of words (what the pretrained features hold, without fine-tuning's noise)")
    p.add_argument("--ft-freeze", default="none", metavar="WHAT",
                   help="finetune's --freeze for both arms: none (default), embeddings, encoder (a probe of the "
                        "pretrained features: only the pooler and classifier learn), or N first layers")
    p.add_argument("--ft-pooling", choices=("pooler", "cls", "mean"), default="mean",
                   help="the classifier's input, both arms alike (default mean: the pooler is trained only by NSP, "
                        "which a short run barely learns)")
    args = p.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: missing; fetch it with: glassbert data fetch sotu")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.downstream_from:
        try:
            args.downstream_from = resolve_model_path(args.downstream_from)  # a run, a model dir, or "minilm"
        except GlassbertError as e:
            sys.exit(f"--downstream-from: {e}")
        run_config = BertConfig.load(args.downstream_from)
        print(f"downstream only: {args.downstream_from} against its architecture from random init; {load_note()}")
        run_tok = Tokenizer.from_pretrained(args.downstream_from)
        record = {}
        if args.probe:
            record["probe"] = probe(args.downstream_from, run_config, run_tok, args.out, args)
            print_probe(record["probe"], args)
        record["downstream"] = downstream(args.downstream_from, run_config, run_tok, args.out, args)
        print_downstream(record["downstream"], args)
        (args.out / "downstream.json").write_text(json.dumps(record, indent=2))
        return
    vocab = args.vocab or make_vocab(args.corpus, args.out / "vocab", args.text_column)
    tok = Tokenizer.from_pretrained(vocab)
    options = parse_options(args.glassbert_option)
    run_dir = args.out / ("glassbert" + (f"-{args.label}" if args.label else ""))
    pargs = PretrainArgs(corpus=str(args.corpus), vocab=str(vocab), out=str(run_dir), preset=args.preset,
                         minutes=args.minutes, seed=args.seed, overwrite=True, text_column=args.text_column,
                         eval_every=10**9, save_every=10**9,
                         **options)
    args.max_seq_length = pargs.max_seq_length
    if pargs.task == "mlm" and not args.no_transformers:
        sys.exit("arm (b) trains on glassbert's NSP pairs: compare task=mlm arms with --no-transformers")
    data = build_datasets(pargs, tok)  # the same pairs pretrain() builds from the same arguments
    defaults = PretrainArgs(corpus="", vocab="", out="")
    # the fixed held-out set: transformers' defaults (15 %, 128 tokens) as the common ground for both arms
    fixed = build_datasets(PretrainArgs(corpus=str(args.corpus), vocab=str(vocab), out="", seed=args.seed,
                                        text_column=args.text_column, task="mlm" if args.heldout == "chunks" else None,
                                        max_seq_length=defaults.max_seq_length), tok)
    g = torch.Generator().manual_seed(1234)
    batches = [fixed.collate(fixed.eval.items[i:i + 64], g) for i in range(0, len(fixed.eval), 64)]
    masked = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
    labels = [it["next_sentence_label"] for it in fixed.eval.items if "next_sentence_label" in it]
    nsp_majority = max(sum(labels), len(labels) - sum(labels)) / len(labels) if labels else math.nan
    config = BertConfig.preset(args.preset, vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
                               max_position_embeddings=max(512, pargs.max_seq_length))
    # glassbert's thread choice for this model and machine, fixed now for both arms (and the calibration)
    threads = set_threads(args.threads, config.hidden_size).threads
    budget = args.minutes * 60
    print(f"quality bench: {args.minutes:g} min per arm, preset {args.preset}, {args.corpus.name}: "
          f"{data.train_documents} training documents ({len(data.train)} pairs), held-out {fixed.eval_documents} "
          f"documents: {len(fixed.eval)} pairs, {masked} masked tokens (seed 1234); vocabulary {tok.vocab_size}; "
          f"arm (a) options {options or 'defaults'}", flush=True)
    start_note = load_note()
    print(f"both arms: peak lr {pargs.lr:g}, batch {pargs.batch_size}, {pargs.max_seq_length} tokens, warmup "
          f"{pargs.warmup_ratio:.0%} then linear decay; at the start: {start_note}", flush=True)

    other = TransformersArm(config, Path(vocab), list(data.train.items), pargs, budget)
    if args.no_transformers:
        other.clock.spent = budget  # done before it starts
    else:
        other.calibrate()
    turns = Turns(other, args.turn, budget)
    t0 = time.perf_counter()
    result = pretrain(pargs, progress=False, threads=threads, callbacks=[turns])
    while not other.done:  # glassbert stopped first: the other arm finishes its budget
        other.run_for(args.turn)
    wall = (time.perf_counter() - t0) / 60
    end_note = load_note()
    print(f"at the end: {end_note} ({wall:.1f} min for both arms)", flush=True)

    import transformers

    keep = {k: v for k, v in config.to_dict().items() if k not in ("architectures", "model_type", "classifier_pooling")}
    judge = transformers.BertForPreTraining(transformers.BertConfig(**keep))
    label_a = "glassbert pretrain" + (f" ({args.label})" if args.label else " (defaults)")
    arms = {label_a: turns.snapshots}
    if not args.no_transformers:
        arms["transformers (BertForPreTraining + DataCollatorForLanguageModeling)"] = other.snapshots
    if args.no_transformers:  # an ablation arm: its final weights only (scoring every copy takes minutes)
        turns.snapshots.kept = turns.snapshots.kept[-1:]
    curves = {name: [(m, {"step": step, **score(state, judge, batches)}) for m, step, state in snaps.kept]
              for name, snaps in arms.items()}
    print(f"\nheld-out ({len(fixed.eval)} {args.heldout} of {fixed.eval_documents} unseen documents, {masked} masked tokens; "
          f"NSP majority class {nsp_majority:.3f}), scored by transformers' BertForPreTraining:")
    print(f"{'arm':<70} {'minutes':>7} {'steps':>6} {'MLM acc':>8} {'MLM loss':>9} {'ppl':>8} {'NSP acc':>8}")
    for name, points in curves.items():
        for minutes, s in points:
            print(f"{name:<70} {minutes:7.2f} {s['step']:6d} {s['mlm_acc']:8.3f} {s['mlm_loss']:9.3f} "
                  f"{s['perplexity']:8.1f} {s['nsp_acc']:8.3f}")
    if not args.no_transformers:
        print(f"(transformers' linear schedule was planned for {other.estimated_steps} steps, from "
              f"{other.calibration_steps} timed calibration steps)")
    finals = {name: points[-1][1] for name, points in curves.items()}
    if len(curves) == 2:  # the target: glassbert's held-out MLM loss lower at every budget measured
        ours, theirs = curves.values()
        lower = [a["mlm_loss"] < b["mlm_loss"] for (_, a), (_, b) in zip(ours[1:], theirs[1:])]
        print(f"glassbert's held-out MLM loss is lower at {sum(lower)} of {len(lower)} budgets measured "
              f"({', '.join(f'{f:g}' for f in FRACTIONS[1:])} of {args.minutes:g} min); at the end "
              f"{ours[-1][1]['mlm_loss']:.3f} vs {theirs[-1][1]['mlm_loss']:.3f}")
    png = args.out / f"quality{'-' + args.label if args.label else ''}.png"
    plot(curves, png, f"SOTU, {args.preset}, {args.minutes:g} min per arm; {end_note}")
    record = {"minutes": args.minutes, "preset": args.preset, "options": options, "label": args.label,
              "load_start_end": [start_note, end_note], "held_out_pairs": len(fixed.eval), "masked_tokens": masked,
              "nsp_majority": nsp_majority, "curves": curves, "finals": finals,
              "glassbert_result": {k: result.get(k) for k in ("step", "elapsed_s")},
              "transformers_planned_steps": other.estimated_steps}
    if args.probe:
        record["probe"] = probe(run_dir, config, tok, args.out, args)
        print_probe(record["probe"], args)
    if args.downstream:
        print("\ndownstream:", flush=True)
        record["downstream"] = downstream(run_dir, config, tok, args.out, args)
        print_downstream(record["downstream"], args)
    name = args.out / f"quality{'-' + args.label if args.label else ''}.json"
    name.write_text(json.dumps(record, indent=2))
    print(f"\ncurve: {png}\nnumbers: {name}")


if __name__ == "__main__":
    main()
