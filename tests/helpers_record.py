"""Shared by the recorder and explorer tests: the six sentence pairs of the article "Exploring BERT" on the toy preset,
pretrained with a plain loop while a Recorder records them as the demo does."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from glassbert.config import BertConfig
from glassbert.heads import BertForPreTraining
from glassbert.recording import Recorder
from glassbert.tokenizer import IGNORE_INDEX, Tokenizer

# The sentence pairs of "Exploring BERT" + two NotNext pairs; the masked words as there.
PAIRS = [
    ("The cat chased the mouse.", "It was a fast chase.", ("cat", "chase"), True),
    ("I need to buy milk.", "Please go to the store.", ("buy", "go"), True),
    ("Buy me some milk.", "Please visit the shop.", ("milk", "shop"), True),
    ("The mouse ran quickly.", "It was too fast.", ("mouse", "fast"), True),
    ("The sun is hot.", "He hates pineapple pizza.", ("sun", "pizza"), False),
    ("I love cats.", "The stars are bright.", ("love", "stars"), False),
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def toy_tokenizer() -> Tokenizer:
    words = sorted({w for a, b, _, _ in PAIRS for w in f"{a} {b}".lower().replace(".", " .").split()})
    return Tokenizer.from_vocab(SPECIALS + words)


def toy_batch(tok: Tokenizer) -> dict[str, torch.Tensor]:
    """The six pairs, padded, with the two named words of each pair masked (labels -100 elsewhere)."""
    enc = tok([a for a, *_ in PAIRS], text_pair=[b for _, b, *_ in PAIRS], padding=True)
    ids = enc["input_ids"].clone()
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, (_, _, words, _) in enumerate(PAIRS):
        tokens = tok.convert_ids_to_tokens(ids[i].tolist())
        for w in words:
            p = tokens.index(w, 1)
            labels[i, p] = ids[i, p]
            ids[i, p] = tok.mask_token_id
    nsp = torch.tensor([0 if is_next else 1 for *_, is_next in PAIRS])
    return {"input_ids": ids, "token_type_ids": enc["token_type_ids"], "attention_mask": enc["attention_mask"],
            "labels": labels, "next_sentence_label": nsp}


def toy_model(tok: Tokenizer, seed: int = 0, **overrides) -> BertForPreTraining:
    torch.manual_seed(seed)
    cfg = BertConfig.preset("toy", vocab_size=tok.vocab_size, max_position_embeddings=16, **overrides)
    return BertForPreTraining(cfg)


def toy_run(run_dir: Path, epochs: int = 60, spec: str = "epochs=0,5,20,last", lr: float = 3e-2,
            max_bytes: float = 50e6, seed: int = 0, **model_overrides) -> tuple[BertForPreTraining, Recorder]:
    """Pretrain the toy model on the six pairs with a plain loop, recording as the demo does."""
    tok = toy_tokenizer()
    batch = toy_batch(tok)
    model = toy_model(tok, seed, **model_overrides)
    rec = Recorder(run_dir, batch, tok, spec, max_bytes=max_bytes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for epoch in range(epochs + 1):
            rec.maybe_record(epoch, epoch, model, last=epoch == epochs)
            if epoch == epochs:
                break
            model.train()
            opt.zero_grad()
            out = model(**batch)
            out.loss.backward()
            opt.step()
            f.write(json.dumps({"epoch": epoch, "step": epoch + 1, "loss": out.loss.item(),
                                "mlm_loss": out.mlm_loss.item(), "nsp_loss": out.nsp_loss.item()}) + "\n")
    return model, rec
