"""NSP/SOP instance building, packing, MLM masking statistics and the collator."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from glassbert.data import read_texts
from glassbert.pretrain import (
    Instance,
    MaskingVocab,
    PretrainingCollator,
    PretrainingConfig,
    PretrainingDataset,
    build_instances,
    mask_tokens,
    tokenize_documents,
)
from glassbert.tokenizer import IGNORE_INDEX, Tokenizer

TINY_CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
N_WORDS, N_PIECES = 200, 100  # ids 5..204 are words, 205..304 are "##" pieces


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    words = [f"w{i}" for i in range(N_WORDS)] + [f"##p{i}" for i in range(N_PIECES)]
    return Tokenizer.from_vocab(SPECIALS + words)


def _random_batch(tok: Tokenizer, rows: int, length: int, seed: int, pieces: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] A [SEP] B [SEP] [PAD]... rows of random lengths; optionally with "##" pieces."""
    rng = random.Random(seed)
    first_word, first_piece = 5, 5 + N_WORDS
    ids = torch.full((rows, length), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, length), dtype=torch.long)
    for r in range(rows):
        n = rng.randint(8, length)
        body = []
        while len(body) < n - 3:
            body.append(rng.randrange(first_word, first_piece))
            while pieces and rng.random() < 0.5 and len(body) < n - 3:
                body.append(rng.randrange(first_piece, first_piece + N_PIECES))
        starts = [i for i in range(1, len(body)) if body[i] < first_piece]
        if not starts:  # make the last token a word so B starts with one
            body[-1], starts = first_word, [len(body) - 1]
        cut = rng.choice(starts)  # A/B boundary between words
        row = [tok.cls_token_id, *body[:cut], tok.sep_token_id, *body[cut:], tok.sep_token_id]
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return ids, mask


# --- masking ------------------------------------------------------------------------------------


def test_masking_statistics(tok: Tokenizer) -> None:
    ids, attn = _random_batch(tok, rows=512, length=128, seed=0)
    cfg = PretrainingConfig(max_predictions_per_seq=128)
    masked, labels = mask_tokens(ids, attn, tok, cfg, torch.Generator().manual_seed(1))
    special = torch.isin(ids, torch.tensor(sorted(tok.special_ids)))
    candidates = attn.bool() & ~special
    chosen = labels != IGNORE_INDEX
    assert not (chosen & ~candidates).any(), "special tokens or padding were chosen"
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen]), "unchosen tokens must be untouched"
    assert abs(chosen.sum().item() / candidates.sum().item() - 0.15) < 0.01
    n = chosen.sum().item()
    to_mask = (masked == tok.mask_token_id) & chosen
    kept = (masked == ids) & chosen
    replaced = chosen & ~to_mask & ~kept
    assert abs(to_mask.sum().item() / n - 0.8) < 0.02
    assert abs(replaced.sum().item() / n - 0.1) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02
    assert not torch.isin(masked[replaced], torch.tensor(sorted(tok.special_ids))).any()
    assert (chosen.sum(dim=1) >= 1).all()


def test_masking_cap_and_minimum(tok: Tokenizer) -> None:
    ids, attn = _random_batch(tok, rows=64, length=128, seed=2)
    cfg = PretrainingConfig(max_predictions_per_seq=5)
    _, labels = mask_tokens(ids, attn, tok, cfg, torch.Generator().manual_seed(0))
    per_row = (labels != IGNORE_INDEX).sum(dim=1)
    n_candidates = attn.sum(dim=1) - 3
    assert (per_row <= 5).all()
    assert (per_row[n_candidates >= 40] == 5).all()
    short = torch.tensor([[tok.cls_token_id, 7, tok.sep_token_id, 8, tok.sep_token_id, 0, 0]])
    _, labels = mask_tokens(short, (short != 0).long(), tok, PretrainingConfig(), torch.Generator().manual_seed(0))
    assert (labels != IGNORE_INDEX).sum().item() == 1  # round(2 * 0.15) = 0, raised to 1


def test_masking_is_deterministic_given_generator(tok: Tokenizer) -> None:
    ids, attn = _random_batch(tok, rows=16, length=64, seed=3)
    for wwm in (False, True):
        cfg = PretrainingConfig(whole_word_mask=wwm)
        a = mask_tokens(ids, attn, tok, cfg, torch.Generator().manual_seed(7))
        b = mask_tokens(ids, attn, tok, cfg, torch.Generator().manual_seed(7))
        c = mask_tokens(ids, attn, tok, cfg, torch.Generator().manual_seed(8))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[1], c[1])


def test_whole_word_masking_never_splits_a_word(tok: Tokenizer) -> None:
    ids, attn = _random_batch(tok, rows=256, length=96, seed=4, pieces=True)
    cfg = PretrainingConfig(whole_word_mask=True, max_predictions_per_seq=96)
    _, labels = mask_tokens(ids, attn, tok, cfg, torch.Generator().manual_seed(5))
    chosen = labels != IGNORE_INDEX
    continuation = (ids >= 5 + N_WORDS) & attn.bool()
    split_words = 0
    for r in range(ids.shape[0]):
        for t in range(1, ids.shape[1]):
            if continuation[r, t] and chosen[r, t] != chosen[r, t - 1]:
                split_words += 1
    assert split_words == 0
    special = torch.isin(ids, torch.tensor(sorted(tok.special_ids)))
    rate = chosen.sum().item() / (attn.bool() & ~special).sum().item()
    assert 0.12 < rate <= 0.16
    assert continuation[chosen].any(), "some multi-piece words should have been chosen"


def test_mask_tokens_rejects_bad_shapes(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match="batch, seq"):
        mask_tokens(torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.long), tok,
                    PretrainingConfig(), torch.Generator())


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="must be 1"):
        PretrainingConfig(mask_ratio=0.9)
    with pytest.raises(ValueError, match="task must be"):
        PretrainingConfig(task="clm")  # type: ignore[arg-type]


# --- instances ----------------------------------------------------------------------------------


def _numbered_corpus(n_docs: int, n_sentences: int, seed: int) -> tuple[list[list[list[int]]], dict[int, tuple[int, int]]]:
    """Documents whose token ids count up through the whole corpus, so every id tells its
    (document, sentence) and consecutive text has consecutive ids."""
    rng = random.Random(seed)
    docs: list[list[list[int]]] = []
    where: dict[int, tuple[int, int]] = {}
    next_id = 1000
    for d in range(n_docs):
        doc = []
        for s in range(rng.randint(n_sentences // 2, n_sentences)):
            sentence = list(range(next_id, next_id + rng.randint(3, 14)))
            next_id += len(sentence)
            where.update({t: (d, s) for t in sentence})
            doc.append(sentence)
        docs.append(doc)
    return docs, where


def _increasing(ids: list[int]) -> bool:
    return all(x < y for x, y in zip(ids, ids[1:]))


def test_nsp_pairs() -> None:
    docs, where = _numbered_corpus(80, 60, seed=0)
    cfg = PretrainingConfig(max_seq_length=64)
    instances = build_instances(docs, cfg, random.Random(0))
    assert len(instances) > 500
    not_next = sum(i.is_random_next for i in instances)
    assert abs(not_next / len(instances) - 0.5) < 0.05
    untruncated_is_next = 0
    for inst in instances:
        a, b = inst.tokens_a, inst.tokens_b
        assert a and b and len(a) + len(b) + 3 <= cfg.max_seq_length
        assert _increasing(a) and _increasing(b)
        doc_a = {where[t][0] for t in a}
        doc_b = {where[t][0] for t in b}
        assert len(doc_a) == 1 and len(doc_b) == 1
        if inst.is_random_next:
            assert doc_a != doc_b
        else:
            assert doc_a == doc_b and a[-1] < b[0]
            if len(a) + len(b) < cfg.max_seq_length - 3:  # nothing was truncated
                assert b[0] == a[-1] + 1, "IsNext B must continue A"
                untruncated_is_next += 1
    assert untruncated_is_next > 50


def test_sop_pairs_and_labels() -> None:
    docs, where = _numbered_corpus(8, 400, seed=1)
    instances = build_instances(docs, PretrainingConfig(task="sop", max_seq_length=48), random.Random(0))
    assert len(instances) > 300
    swapped = sum(i.next_sentence_label for i in instances)
    assert abs(swapped / len(instances) - 0.5) < 0.06
    for inst in instances:
        a, b = inst.tokens_a, inst.tokens_b
        assert len(a) + len(b) + 3 <= 48 and a and b
        assert len({where[t][0] for t in a + b}) == 1, "SOP segments come from one document"
        if inst.next_sentence_label == 0:
            assert a[-1] < b[0]
        else:
            assert b[-1] < a[0]


def test_nsp_needs_two_documents() -> None:
    one_doc = [[[1, 2, 3], [4, 5]], [[]]]
    with pytest.raises(ValueError, match="at least 2 non-empty documents, got 1"):
        build_instances(one_doc, PretrainingConfig(), random.Random(0))
    assert build_instances(one_doc, PretrainingConfig(task="sop"), random.Random(0))  # SOP is fine


def test_pack_layout(tok: Tokenizer) -> None:
    instance = Instance([10, 11], [12, 13, 14], False)
    ids, types = tok.pack(instance.tokens_a, instance.tokens_b)  # how PretrainingDataset packs
    assert ids == [tok.cls_token_id, 10, 11, tok.sep_token_id, 12, 13, 14, tok.sep_token_id]
    assert types == [0, 0, 0, 0, 1, 1, 1, 1]


# --- real text, dataset and collator ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_tok() -> Tokenizer:
    return Tokenizer.train(read_texts(TINY_CORPUS), vocab_size=1500, files=False, show_progress=False)


def test_tiny_corpus_end_to_end(corpus_tok: Tokenizer) -> None:
    texts = read_texts(TINY_CORPUS)
    documents = tokenize_documents(texts, corpus_tok, progress=False)
    assert len(documents) == len(texts)
    assert all(corpus_tok.cls_token_id not in s for doc in documents for s in doc)
    assert corpus_tok.decode(documents[0][0]) == "call me ishmael."
    cfg = PretrainingConfig(max_seq_length=64)
    dataset = PretrainingDataset.from_texts(texts, corpus_tok, cfg, seed=0)
    assert len(dataset) > 100
    for item in dataset:
        ids, types = item["input_ids"], item["token_type_ids"]
        assert len(ids) == len(types) <= 64
        assert ids[0] == corpus_tok.cls_token_id and ids[-1] == corpus_tok.sep_token_id
        first_sep = ids.index(corpus_tok.sep_token_id)
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)

    collate = PretrainingCollator(corpus_tok, cfg)
    items = [dataset[i] for i in range(8)]
    batch = collate(items, torch.Generator().manual_seed(0))
    again = collate(items, torch.Generator().manual_seed(0))
    longest = max(len(i["input_ids"]) for i in items)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"}
    assert batch["input_ids"].shape == (8, longest) and batch["input_ids"].dtype == torch.long
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    assert batch["attention_mask"].sum(1).tolist() == [len(i["input_ids"]) for i in items]
    pad = batch["attention_mask"] == 0
    assert (batch["input_ids"][pad] == corpus_tok.pad_token_id).all()
    assert (batch["labels"][pad] == IGNORE_INDEX).all() and (batch["token_type_ids"][pad] == 0).all()
    assert ((batch["labels"] != IGNORE_INDEX).sum(1) >= 1).all()
    assert batch["next_sentence_label"].tolist() == [i["next_sentence_label"] for i in items]
    originals = torch.full_like(batch["labels"], corpus_tok.pad_token_id)
    for r, item in enumerate(items):
        originals[r, : len(item["input_ids"])] = torch.tensor(item["input_ids"])
    chosen = batch["labels"] != IGNORE_INDEX
    assert torch.equal(batch["labels"][chosen], originals[chosen])


def test_collator_rejects_empty(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match="empty"):
        PretrainingCollator(tok, PretrainingConfig())([])


def test_masking_vocab_marks_pieces(tok: Tokenizer) -> None:
    vocab = MaskingVocab.from_tokenizer(tok)
    assert vocab.continuation.sum().item() == N_PIECES
    assert not torch.isin(vocab.random_ids, vocab.special_ids).any()
    assert len(vocab.random_ids) == tok.vocab_size - len(tok.special_ids)


# --- the end-of-run report ---------------------------------------------------------------------------


def test_run_report_figures_and_fill_mask_examples(corpus_tok: Tokenizer) -> None:
    """The report's perplexity is exp(MLM loss) and the NSP baseline is the held-out pairs' commoner label;
    each fill-mask example hides a held-out word of segment A, and its guesses are the model's own top 3."""
    from glassbert.config import BertConfig
    from glassbert.heads import BertForPreTraining
    from glassbert.fill_mask import predict_masks
    from glassbert.pretrain.report import fill_mask_examples, run_report

    items = [{"next_sentence_label": label} for label in (1, 1, 1, 0)]
    report = run_report({"mlm_loss": 2.0, "mlm_acc": 0.25, "nsp_acc": 0.5}, "nsp", items, [])
    assert (report.perplexity, report.pair_majority, report.pair_acc, report.pairs) == (
        pytest.approx(7.389056), 0.75, 0.5, 4)
    assert "  NSP: accuracy 0.500 (always answering the commoner label: 0.750)" in report.lines()

    texts = read_texts(TINY_CORPUS)
    dataset = PretrainingDataset.from_texts(texts, corpus_tok, PretrainingConfig(max_seq_length=64), seed=0)
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.preset("tiny", vocab_size=corpus_tok.vocab_size))
    examples = fill_mask_examples(model, corpus_tok, dataset, n=4, seed=0, window=50)
    assert len(examples) == 4 and model.training  # the model is handed back in the mode it came
    segments = [corpus_tok.decode(item["input_ids"][1:item["input_ids"].index(corpus_tok.sep_token_id)])
                for item in dataset]
    for example in examples:
        assert example.answer.isalpha() and len(example.answer) >= 3
        # the context is a window of segment A (… where it is cut; the trained vocabulary, so the segments,
        # can differ between processes: tokenizers' trainer breaks ties in hash-map order)
        shown = example.context.removeprefix("…").removesuffix("…").replace("[MASK]", example.answer)
        assert any(shown in segment for segment in segments), (shown, segments)
        model.eval()
        [own] = predict_masks(model, corpus_tok, [example.context], top_k=3)
        assert [t for t, _ in own.candidates] == [t for t, _ in example.guesses]


def test_nsp_labels_are_balanced_when_chunks_are_single_sentences() -> None:
    """Documents of long sentences (each fills a chunk alone): half the pairs are still IsNext (the two halves
    of a sentence), not all NotNext as BERT's script made them, which tilted SOTU's labels to 55 % NotNext."""
    rng = random.Random(3)
    docs = [[[rng.randrange(5, 300) for _ in range(70)] for _ in range(6)] for _ in range(60)]
    instances = build_instances(docs, PretrainingConfig(max_seq_length=64), random.Random(0))
    not_next = sum(i.is_random_next for i in instances) / len(instances)
    assert len(instances) > 300 and abs(not_next - 0.5) < 0.05, not_next
    for inst in instances:
        assert inst.tokens_a and inst.tokens_b and len(inst.tokens_a) + len(inst.tokens_b) <= 61


@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_mask_rate_is_honoured_by_the_pretraining_data(corpus_tok: Tokenizer, tmp_path, rate: float) -> None:
    """`pretrain --mask-rate R` (PretrainArgs.masked_lm_prob): R of the real tokens are chosen, 80/10/10, in the
    batches a run trains on (at 128 tokens and 30 % the old cap of 20 predictions per pair allowed only ~16 %)."""
    from glassbert.pretrain.job import PretrainArgs, build_datasets

    vocab = tmp_path / "vocab"
    corpus_tok.save_pretrained(vocab)
    args = PretrainArgs(corpus=str(TINY_CORPUS), vocab=str(vocab), out=str(tmp_path / "run"), masked_lm_prob=rate)
    data = build_datasets(args, corpus_tok)
    assert args.max_predictions_per_seq == math.ceil(128 * rate)
    batch = data.collate(data.train.items, torch.Generator().manual_seed(0))
    originals = [item["input_ids"] for item in data.train.items]
    candidates = sum(len(ids) - 3 for ids in originals)
    chosen = batch["labels"] != IGNORE_INDEX
    assert abs(chosen.sum().item() / candidates - rate) < 0.01 * (rate / 0.15)
    n = chosen.sum().item()
    as_mask = (batch["input_ids"] == corpus_tok.mask_token_id) & chosen
    kept = (batch["input_ids"] == batch["labels"]) & chosen
    assert abs(as_mask.sum().item() / n - 0.8) < 0.02 and abs(kept.sum().item() / n - 0.1) < 0.02


def test_a_mask_rate_outside_0_1_is_named() -> None:
    from glassbert.pretrain.job import PretrainArgs

    with pytest.raises(ValueError, match="--mask-rate 1.5: give a share of the tokens between 0 and 1"):
        PretrainArgs(corpus="c", vocab="v", out="o", masked_lm_prob=1.5)
