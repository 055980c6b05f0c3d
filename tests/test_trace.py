"""`trace` reads the real forward pass off the capture points and prints the steps of the article "Bert Inner Workings"."""
from __future__ import annotations

import re

import torch

import glassbert as gb
from glassbert.capture import Capture
from glassbert.trace import trace

# "Bert Inner Workings" (BertForSequenceClassification on "I love cats!" / "He hates pineapple pizza.", bert-base)
EMBEDDINGS = [("Tokens IDs", [2, 9]), ("Tokens Type IDs", [2, 9]), ("Word Embeddings", [2, 9, 768]),
              ("Position Embeddings", [1, 9, 768]), ("Token Types Embeddings", [2, 9, 768]),
              ("Sum Up All Embeddings", [2, 9, 768]), ("Embeddings Layer Normalization", [2, 9, 768]),
              ("Embeddings Dropout Layer", [2, 9, 768])]
LAYER = [("Hidden States", [2, 9, 768]), ("Query Linear Layer", [2, 9, 768]), ("Key Linear Layer", [2, 9, 768]),
         ("Value Linear Layer", [2, 9, 768]), ("Query", [2, 12, 9, 64]), ("Key", [2, 12, 9, 64]),
         ("Value", [2, 12, 9, 64]), ("Key Transposed", [2, 12, 64, 9]), ("Attention Scores", [2, 12, 9, 9]),
         ("Attention Scores Divided by Scalar", [2, 12, 9, 9]),
         ("Attention Probabilities Softmax Layer", [2, 12, 9, 9]),
         ("Attention Probabilities Dropout Layer", [2, 12, 9, 9]), ("Context", [2, 12, 9, 64]),
         ("Context Permute", [2, 9, 12, 64]), ("Context Reshaped", [2, 9, 768]),
         ("Hidden States", [2, 9, 768]), ("Hidden States Linear Layer", [2, 9, 768]),
         ("Hidden States Dropout Layer", [2, 9, 768]), ("Hidden States Normalization Layer", [2, 9, 768]),
         ("Hidden States", [2, 9, 768]), ("Hidden States Linear Layer", [2, 9, 3072]),
         ("Hidden States Gelu Activation Function", [2, 9, 3072]),
         ("Hidden States", [2, 9, 3072]), ("Hidden States Linear Layer", [2, 9, 768]),
         ("Hidden States Dropout Layer", [2, 9, 768]), ("Hidden States Layer Normalization", [2, 9, 768])]
POOLER = [("Hidden States", [2, 9, 768]), ("First Token [CLS]", [2, 768]),
          ("First Token [CLS] Linear Layer", [2, 768]), ("First Token [CLS] Tanh Activation Function", [2, 768])]

# a cased vocabulary in which the reference sentences take 6 and 9 tokens, as bert-base-cased gives
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "I", "love", "cats", "!", "He", "hates", "pine",
         "##app", "##le", "pizza", "."]


def reference_batch():
    tok = gb.Tokenizer.from_vocab(VOCAB, lowercase=False)
    return tok(["I love cats!", "He hates pineapple pizza."], padding=True)


def parse(text: str):
    steps, layer = [], None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"-+ BERT LAYER (\d+) -+", line)
        if m:
            layer = int(m.group(1))
        elif line.endswith(":") and i + 1 < len(lines) and lines[i + 1].startswith("torch.Size("):
            shape = [int(x) for x in re.findall(r"\d+", lines[i + 1].split(")")[0])]
            steps.append((layer, line[:-1], shape))
    return steps


def test_trace_prints_reference_shapes_in_order():
    torch.manual_seed(0)
    model = gb.BertModel(gb.BertConfig.preset("base", vocab_size=len(VOCAB)))
    batch = reference_batch()
    assert batch["input_ids"].shape == (2, 9)
    lines: list[str] = []
    trace(model, batch, echo=lines.append)
    text = "\n".join(lines)
    assert "Created Tokens Positions IDs:\ntensor([[0, 1, 2, 3, 4, 5, 6, 7, 8]])" in text
    assert "Attention Head Size:\n64" in text and "Combined Attentions Head Size:\n768" in text
    steps = parse(text)
    expected = [(None, n, s) for n, s in EMBEDDINGS]
    for layer in range(1, 13):
        expected += [(layer, n, s) for n, s in LAYER]
    expected += [(12, n, s) for n, s in POOLER]
    assert steps == expected
    assert text.count("BERT LAYER") == 12


def test_trace_values_and_layer_selection():
    torch.manual_seed(0)
    model = gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=len(VOCAB)))
    lines: list[str] = []
    cap = trace(model, reference_batch(), values=True, layers=[2], echo=lines.append)
    text = "\n".join(lines)
    assert "----------------- BERT LAYER 1 -----------------\n\n...\n" in text
    steps = parse(text)
    assert {layer for layer, _, _ in steps} == {None, 2}
    # the statistics are those of the captured tensor itself
    ln = cap["encoder.layer.1.output.layernorm"]
    assert f"mean {ln.mean().item():+.4f}  std {ln.std(unbiased=False).item():.4f}" in text


def test_capture_is_the_real_forward_pass():
    torch.manual_seed(0)
    model = gb.BertModel(gb.BertConfig.preset("tiny", vocab_size=len(VOCAB))).eval()
    batch = reference_batch()
    with torch.no_grad(), Capture(model) as cap:
        out = model(**batch)
    assert torch.equal(cap["encoder.layer.1.output.layernorm"], out.sequence_output)
    assert torch.equal(cap["pooler.activation"], out.pooled_output)
    probs = cap["encoder.layer.0.attention.self.probs"]
    assert torch.allclose(probs.sum(-1), torch.ones(2, 2, 9))
    assert (probs[0, :, :, 6:] == 0).all()  # padding keys get no attention
    with torch.no_grad(), Capture(model, include=["*.attention.self.probs"]) as only:
        model(**batch)
    assert list(only.records) == ["encoder.layer.0.attention.self.probs", "encoder.layer.1.attention.self.probs"]


def test_task_model_capture_names_and_heads():
    cfg = gb.BertConfig.preset("toy")
    model = gb.BertForPreTraining(cfg).eval()
    ids = torch.tensor([[2, 5, 4, 6, 3, 7, 4, 3, 0]])
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[0, 6] = 9, 10
    with torch.no_grad(), Capture(model) as cap:
        out = model(ids, attention_mask=(ids != 0).long(), labels=labels, next_sentence_label=torch.tensor([0]))
    assert cap["cls.predictions.h_masked"].shape == (2, 7)
    assert torch.equal(cap["cls.predictions.logits"], out.prediction_logits)
    assert cap["cls.seq_relationship.logits"].shape == (1, 2)
    assert cap["bert.encoder.layer.1.attention.self.query"].shape == (1, 5, 9, 4)
