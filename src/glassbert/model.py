"""BERT, top-down in the order the data flows through it.

    input_ids, token_type_ids, attention_mask (or (B, T, T)), position_ids  (B, T)
    ─▶ BertEmbeddings: word + token_type + position ─▶ LayerNorm ─▶ dropout   (B, T, H)
    ─▶ BertEncoder: BertLayer × L
         BertAttention
           BertSelfAttention: Q, K, V ─▶ heads ─▶ softmax(QKᵀ/√d + mask) V ─▶ merge heads
           BertSelfOutput: dense ─▶ dropout ─▶ LayerNorm(· + input)          (add & norm)
         BertIntermediate: dense ─▶ GELU                                    (B, T, I)
         BertOutput: dense ─▶ dropout ─▶ LayerNorm(· + attention output)   (add & norm)
    ─▶ BertPooler: [CLS] ─▶ dense ─▶ tanh                                   (B, H)

Class names and parameter names are transformers' (`encoder.layer.0.attention.self.query.weight`), so
published checkpoints load by name. Every step is offered to `capture.tap` under a name, and each module
declares the names it taps in its `capture` table just above its `forward` (`trace`, the recorder and the
explorer read only those tables); when nothing captures, the fast path runs instead: padding tokens are removed before
the linear layers (MosaicBERT's unpadding) and attention runs on `scaled_dot_product_attention`. A (B, T, T)
attention mask with position_ids runs packed rows (several documents per row, each seeing only itself).
In pretraining (``output_rows``) the last layer computes only the rows the heads read (MosaicBERT's subset trick,
taken into attention too): only the masked tokens and [CLS] are queries there, attending to every token as a key;
the other tokens' last outputs are never computed.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .capture import CORE, DETAIL, KEEP, REDUNDANT, Point, Points, capturing, tap
from .config import BertConfig
from .errors import InputError
from .precision import attention_in_fp32
from .pretrained import BertPreTrainedModel
from .unpad import Rows, Unpadded, additive_mask, attend_each_row, key_mask, real_tokens, take_rows

ACT2FN = {
    "gelu": F.gelu,  # exact, erf-based: the original BERT's
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-time dropout at a fraction of ``F.dropout``'s cost on a CPU. 16 random bits an element, one 64-bit
    draw for four, from numpy's SFC64 generator seeded by one draw from torch's (so ``torch.manual_seed`` and a
    checkpoint's saved torch RNG state decide the masks as before): 1.8 ms for a small-preset layer's attention
    probabilities against 4.3 with torch's own serial generator, whose ``bernoulli_`` (``F.dropout``) draws for
    every element. An element is kept when its bits are at least round(65536·p)/65536 up, the kept ones scaled by
    the inverse of that exact keep probability (p = 0.1 keeps 58,982 of 65,536). On a GPU ``F.dropout`` (its own
    fast kernel) runs instead."""
    drop = round(65536 * p)
    if drop == 0 or drop == 65536 or x.device.type != "cpu":  # nothing (or everything) dropped; a GPU
        return F.dropout(x, p, training=True)
    n = x.numel()
    seed = int(torch.randint(0, 2 ** 63 - 1, ()))
    draws = np.random.SFC64(seed).random_raw((n + 3) // 4)                      # ⌈n/4⌉ uint64, every bit uniform
    bits = torch.from_numpy(draws.view(np.int16)[:n]).view(x.shape)
    # 1 where kept, P = (65536 − drop) / 65536; written in x's dtype: a bool mask costs 5× as much to multiply by
    keep = torch.ge(bits, drop - 32768, out=torch.empty(x.shape, dtype=x.dtype))
    return _KeepAndScale.apply(x, keep, 65536 / (65536 - drop))


class _KeepAndScale(torch.autograd.Function):
    """x · keep · scale, and the gradient grad · keep · scale, each in one pass: ``addcmul`` computes in fp32 and
    rounds once (bit for bit ``(x * keep) * scale`` with the scale as a float; in bf16 a factor would round it),
    where the two multiplications took two passes forward and two backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.addcmul(x.new_zeros(()), x, keep, value=scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return torch.addcmul(grad.new_zeros(()), grad, keep, value=ctx.scale), None, None


class Dropout(nn.Dropout):
    """nn.Dropout (same name, same module), training with :func:`dropout`'s cheaper mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p) if self.training else x


# ─── embeddings ─────────────────────────────────────────────────────────────────────────────
class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        E = config.embedding_size  # = H in BERT; ALBERT's narrower E is projected to H by its encoder
        self.word_embeddings = nn.Embedding(config.vocab_size, E, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, E)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, E)
        self.LayerNorm = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings)[None], persistent=False)

    capture = Points("Embeddings", [
        Point("position_ids", ("token",), "position ids", "Created Tokens Positions IDs", KEEP,
              block="position ids", chain=2, group="Input", show_values=True),
        Point("input_ids", ("token",), "input ids", "Tokens IDs", KEEP, block="input ids", chain=0, group="Input"),
        Point("token_type_ids", ("token",), "segment ids", "Tokens Type IDs", KEEP, block="segment ids", chain=1,
              group="Input"),
        Point("word", ("token", "hidden"), "token embedding", "Word Embeddings", CORE,
              block="tok_embed", weight="word_embeddings.weight", weight_block="W tok", chain=0),
        Point("position", ("token", "hidden"), "position embedding", "Position Embeddings", CORE,
              block="pos_embed", weight="position_embeddings.weight", weight_block="W pos", chain=1),
        Point("token_type", ("token", "hidden"), "segment embedding", "Token Types Embeddings", CORE,
              block="seg_embed", weight="token_type_embeddings.weight", weight_block="W seg", chain=2),
        Point("sum", ("token", "hidden"), "sum of embeddings", "Sum Up All Embeddings", CORE, block="sum", row=1),
        Point("layernorm", ("token", "hidden"), "normalized embedding", "Embeddings Layer Normalization", CORE,
              block="LayerNorm", row=1, role="start"),
        Point("dropout", ("token", "hidden"), "embedding after dropout", "Embeddings Dropout Layer", REDUNDANT),
    ])

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        T = input_ids.shape[1]
        if position_ids is None:                                             # given: packed rows restart at 0
            position_ids = self.position_ids[:, :T]                          # (1, T) | (B, T)
        tap(self, "position_ids", position_ids)
        tap(self, "input_ids", input_ids)                                    # (B, T)
        tap(self, "token_type_ids", token_type_ids)                          # (B, T)
        word = tap(self, "word", self.word_embeddings(input_ids))            # (B, T, H)
        position = tap(self, "position", self.position_embeddings(position_ids))  # (1, T, H)
        token_type = tap(self, "token_type", self.token_type_embeddings(token_type_ids))  # (B, T, H)
        x = tap(self, "sum", word + token_type + position)                   # (B, T, H)
        x = tap(self, "layernorm", self.LayerNorm(x))
        return tap(self, "dropout", self.dropout(x))


def joined_linear(x: torch.Tensor, *layers: nn.Linear) -> torch.Tensor:
    """The outputs of several Linear layers on the same input, side by side, from one GEMM on their joined weights.
    Under autocast each weight is cast before they are joined: the join then moves half the bytes (and autocast
    would cast the joined fp32 weight anyway)."""
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    weight = torch.cat([layer.weight if dtype is None else layer.weight.to(dtype) for layer in layers])
    bias = torch.cat([layer.bias if dtype is None else layer.bias.to(dtype) for layer in layers])
    return F.linear(x, weight, bias)                                              # (…, Σ out)


# ─── self-attention ─────────────────────────────────────────────────────────────────────────
ATTENTION_GROUP = "Encoder layer {layer} of {layers} · multi-head attention ({heads} heads)"
FFN_GROUP = "Encoder layer {layer} · feed-forward"


class BertSelfAttention(nn.Module):
    """Multi-head attention. Head size may differ from hidden/heads (the toy model: 7 → 5 × 4)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.attention_head_size
        A = config.all_head_size
        self.query = nn.Linear(config.hidden_size, A)
        self.key = nn.Linear(config.hidden_size, A)
        self.value = nn.Linear(config.hidden_size, A)
        self.dropout = Dropout(config.attention_probs_dropout_prob)
        self.qkv: nn.Module | None = None  # Q, K, V as one layer, made once for inference (glassbert.quantize)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)

    capture = Points(ATTENTION_GROUP, [
        Point("hidden_states", ("token", "hidden"), "attention input", "Hidden States", REDUNDANT),
        Point("query_linear", ("token", "all_head"), "Q = W_Q·x (all heads)", "Query Linear Layer", DETAIL,
              block="W_Q(x)", weight="query.weight", weight_block="W_Q", chain=0,
              rebuild=("heads_concat", "query", None)),
        Point("key_linear", ("token", "all_head"), "K = W_K·x (all heads)", "Key Linear Layer", DETAIL,
              block="W_K(x)", weight="key.weight", weight_block="W_K", chain=1,
              rebuild=("heads_concat", "key", None)),
        Point("value_linear", ("token", "all_head"), "V = W_V·x (all heads)", "Value Linear Layer", DETAIL,
              block="W_V(x)", weight="value.weight", weight_block="W_V", chain=2,
              rebuild=("heads_concat", "value", None)),
        Point("query", ("head", "token", "head_dim"), "Q per head", "Query", CORE, block="q_s (heads)", row=1, chain=0),
        Point("key", ("head", "token", "head_dim"), "K per head", "Key", CORE, block="k_s (heads)", row=1, chain=1),
        Point("value", ("head", "token", "head_dim"), "V per head", "Value", CORE, block="v_s (heads)", row=1, chain=2),
        Point("key_transposed", ("head", "head_dim", "token"), "Kᵀ per head", "Key Transposed", REDUNDANT,
              block="k_sᵀ", row=1, chain=1, rebuild=("transpose", "key", None)),
        Point("scores", ("head", "token", "token"), "scores Q·Kᵀ", "Attention Scores", REDUNDANT, block="q·kᵀ", row=2,
              rebuild=("scale", "scores_scaled", None)),                  # = scaled scores × √d
        Point("scores_scaled", ("head", "token", "token"), "scaled scores QKᵀ/√d",
              "Attention Scores Divided by Scalar", CORE, block="÷√d", row=2, role="attention_scores"),
        Point("attention_mask", ("token",), "additive attention mask (0 = attend, −∞ = [PAD] key)", None, KEEP,
              block="mask", row=2, chain=-1),
        Point("scores_masked", ("head", "token", "token"), "masked scores QKᵀ/√d + mask", None, CORE,
              block="+ mask", row=2, role="attention_masked", rebuild=("add_mask", "scores_scaled", "attention_mask")),
        Point("probs", ("head", "token", "token"), "attention probabilities", "Attention Probabilities Softmax Layer",
              KEEP, block="softmax = attn", row=2, role="attention"),
        Point("probs_dropout", ("head", "token", "token"), "attention after dropout",
              "Attention Probabilities Dropout Layer", REDUNDANT),
        Point("context", ("head", "token", "head_dim"), "context per head", "Context", CORE, block="ctx = attn·v", row=2),
        Point("context_permute", ("token", "head", "head_dim"), "context, heads last", "Context Permute", REDUNDANT,
              rebuild=("heads_last", "context", None)),
        Point("context_reshaped", ("token", "all_head"), "context, heads concatenated", "Context Reshaped", DETAIL,
              block="concat heads", row=3, rebuild=("heads_concat", "context", None)),
    ])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, packing: Unpadded | None = None,
                explicit: bool = False, rows: Rows | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The context of every token, or of the token ``rows`` alone (every token still a key and a value)."""
        if explicit:
            context, probs = self.explicit(x, mask)
            return take_rows(context, rows), probs
        return self.fast(x, mask, packing, rows), None

    def explicit(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every step spelled out, as in "Bert Inner Workings" (George Mihaila); returns the attention
        probabilities too."""
        B, T, _ = x.shape
        tap(self, "hidden_states", x)                                             # (B, T, H)
        q = tap(self, "query_linear", self.query(x))                              # (B, T, A)
        k = tap(self, "key_linear", self.key(x))
        v = tap(self, "value_linear", self.value(x))
        q = tap(self, "query", self.split_heads(q))                               # (B, nh, T, hs)
        k = tap(self, "key", self.split_heads(k))
        v = tap(self, "value", self.split_heads(v))
        k_t = tap(self, "key_transposed", k.transpose(-1, -2))                    # (B, nh, hs, T)
        scores = tap(self, "scores", q @ k_t)                                     # (B, nh, T, T)
        scores = tap(self, "scores_scaled", scores / math.sqrt(self.head_size))
        tap(self, "attention_mask", key_mask(mask).expand(B, T))                # (B, T) 0 | dtype min
        scores = tap(self, "scores_masked", scores + mask)                        # (B, nh, T, T)
        probs = tap(self, "probs", torch.softmax(scores, dim=-1))                 # (B, nh, T, T)
        dropped = tap(self, "probs_dropout", self.dropout(probs))
        context = tap(self, "context", dropped @ v)                               # (B, nh, T, hs)
        context = tap(self, "context_permute", context.permute(0, 2, 1, 3))       # (B, T, nh, hs)
        context = tap(self, "context_reshaped", context.reshape(B, T, -1))        # (B, T, A)
        return context, probs

    def fast(self, x: torch.Tensor, mask: torch.Tensor, packing: Unpadded | None,
             rows: Rows | None = None) -> torch.Tensor:
        """One fused QKV GEMM (on real tokens only when `packing`), then SDPA (or, training on a CPU, :meth:`products`).
        With ``rows`` and a mask by key (not packed rows), Q is computed for those rows alone and only they attend:
        R queries a row instead of T (pretraining's last layer: the masked tokens and [CLS], R ≈ T/5)."""
        if self.qkv is not None:                                                  # bf16 or int8 inference
            qkv = self.qkv(x)                                                     # (B, T, 3A) | (N, 3A)
        elif rows is not None and mask.shape[2] == 1:                             # the queries of `rows` only
            q = F.linear(take_rows(x, rows), self.query.weight, self.query.bias)   # (M, A)
            kv = joined_linear(x, self.key, self.value)                           # (B, T, 2A) | (N, 2A)
            kv = packing.pad(kv) if packing is not None else kv                   # (B, T, 2A)
            k, v = (self.split_heads(t) for t in kv.chunk(2, dim=-1))             # (B, nh, T, hs)
            context = self.attend(self.split_heads(rows.queries.pad(q)), k, v, mask)  # (B, nh, R, hs)
            return rows.queries.unpad(context.transpose(1, 2).flatten(2))         # (M, A)
        else:
            qkv = joined_linear(x, self.query, self.key, self.value)              # (B, T, 3A) | (N, 3A)
        each_row = packing is not None and mask.shape[2] == 1  # unpadded, and no row holds several documents
        if each_row and self.qkv is not None and not self.training:              # a model prepared for inference
            fp32 = attention_in_fp32(qkv)
            with torch.autocast("cpu", enabled=False) if fp32 else contextlib.nullcontext():
                context = attend_each_row(qkv.float() if fp32 else qkv, packing, self.num_heads).to(qkv.dtype)
            return take_rows(context, rows)                                       # (N, A) | (M, A)
        if packing is not None:
            qkv = packing.pad(qkv)                                                # (B, T, 3A)
        q, k, v = (self.split_heads(t) for t in qkv.chunk(3, dim=-1))             # (B, nh, T, hs)
        context = self.attend(q, k, v, mask).transpose(1, 2).flatten(2)          # (B, T, A)
        return take_rows(packing.unpad(context) if packing is not None else context, rows)  # (N | M, A)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, nh, T | R, hs) queries on (B, nh, T, hs) keys and values → the context, (B, nh, T | R, hs), in Q's
        dtype: SDPA (in fp32 where bf16 SDPA is the slower, see attention_in_fp32), or :meth:`products`."""
        dtype, fp32 = q.dtype, attention_in_fp32(q)
        if self.training and q.device.type == "cpu" and (self.dropout.p > 0 or fp32):
            return self.products(q, k, v, mask)
        if fp32:
            q, k, v, mask = q.float(), k.float(), v.float(), mask.float()
        with torch.autocast("cpu", enabled=False) if fp32 else contextlib.nullcontext():  # it would cast back
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0).to(dtype)

    def products(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Training on a CPU: dropout(softmax(QKᵀ/√d + mask))·V as matrix products in Q's dtype, autocast off.
        SDPA would draw its dropout mask with ``bernoulli_`` (3× :func:`dropout`'s cost) and, without AMX, runs
        bf16 slower than fp32, where bf16 matrix products run 2–3× as fast as fp32 ones (AVX512-BF16). Forward
        and backward of one small-preset layer's attention (32 × 128 tokens, 2 threads, AMD Zen 4): fp32 65 ms,
        bf16 31 ms; without dropout bf16 21 ms, fp32 SDPA 35 ms."""
        dtype = q.dtype  # bf16 under autocast: the mask's fp32 minimum would be −inf there (NaN on a keyless row)
        mask = mask.clamp(min=torch.finfo(dtype).min).to(dtype)                   # (B, 1, 1 | T, T)
        with torch.autocast("cpu", enabled=False):
            scores = (q * (1 / math.sqrt(self.head_size))) @ k.transpose(-1, -2) + mask  # (B, nh, T, T)
            probs = torch.softmax(scores, dim=-1)
            if self.dropout.p > 0:
                probs = dropout(probs, self.dropout.p)
            return probs @ v                                                      # (B, nh, T, hs)


class BertSelfOutput(nn.Module):
    """Project the heads back to H, then add & norm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.all_head_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    capture = Points(ATTENTION_GROUP, [
        Point("hidden_states", ("token", "all_head"), "attention output input", "Hidden States", REDUNDANT),
        Point("dense", ("token", "hidden"), "attention output W_O·ctx", "Hidden States Linear Layer", CORE,
              block="output", weight="dense.weight", weight_block="W_O", row=3),
        Point("dropout", ("token", "hidden"), "attention output after dropout", "Hidden States Dropout Layer", REDUNDANT),
        Point("layernorm", ("token", "hidden"), "add & norm (attention)", "Hidden States Normalization Layer", CORE,
              block="Add & Norm", row=3),
    ])

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        tap(self, "hidden_states", context)                                       # (B, T, A)
        x = tap(self, "dense", self.dense(context))                               # (B, T, H)
        x = tap(self, "dropout", self.dropout(x))
        return tap(self, "layernorm", self.LayerNorm(x + residual))


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, mask, packing=None, explicit=False, rows=None):
        """``rows``: compute the output only for these token rows (every token is still attended to)."""
        context, probs = self.self(x, mask, packing, explicit, rows)              # (M, A) with rows
        return self.output(context, take_rows(x, rows)), probs                    # (M, H) with rows


# ─── feed-forward ───────────────────────────────────────────────────────────────────────────
class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]

    capture = Points(FFN_GROUP, [
        Point("hidden_states", ("token", "hidden"), "FFN input", "Hidden States", REDUNDANT),
        Point("dense", ("token", "intermediate"), "FFN W_1·x", "Hidden States Linear Layer", DETAIL,
              block="W_1·x", weight="dense.weight", weight_block="W_1"),
        Point("activation", ("token", "intermediate"), "FFN activation (GELU)",
              "Hidden States {act} Activation Function", DETAIL, block="GELU"),
    ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tap(self, "hidden_states", x)                                             # (B, T, H)
        x = tap(self, "dense", self.dense(x))                                     # (B, T, I)
        return tap(self, "activation", self.act(x))


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    capture = Points(FFN_GROUP, [
        Point("hidden_states", ("token", "intermediate"), "FFN output input", "Hidden States", REDUNDANT),
        Point("dense", ("token", "hidden"), "FFN W_2·h", "Hidden States Linear Layer", CORE,
              block="W_2·h", weight="dense.weight", weight_block="W_2", chain=1),
        Point("dropout", ("token", "hidden"), "FFN output after dropout", "Hidden States Dropout Layer", REDUNDANT),
        Point("layernorm", ("token", "hidden"), "add & norm = layer output", "Hidden States Layer Normalization", KEEP,
              block="Add & Norm", chain=1),
    ])

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        tap(self, "hidden_states", x)                                             # (B, T, I)
        x = tap(self, "dense", self.dense(x))                                     # (B, T, H)
        x = tap(self, "dropout", self.dropout(x))
        return tap(self, "layernorm", self.LayerNorm(x + residual))


# ─── the stack ──────────────────────────────────────────────────────────────────────────────
class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x, mask, packing=None, explicit=False, rows=None):
        attended, probs = self.attention(x, mask, packing, explicit, rows)        # (B, T, H) | (N, H) | (M, H)
        return self.output(self.intermediate(attended), attended), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x, mask, packing=None, explicit=False, last_rows=None):
        """``last_rows``: the token rows the last layer computes (the others are not needed; see BertModel)."""
        outputs, attentions = [], []
        for i, layer in enumerate(self.layer):
            x, probs = layer(x, mask, packing, explicit, last_rows if i == len(self.layer) - 1 else None)
            outputs.append(x)
            attentions.append(probs)
        return outputs, attentions


# The pooler's own diagram box, whatever head (if any) reads its output: a bare encoder has only this one.
POOLER_ONLY_GROUP = "Pooler ([CLS] → tanh)"


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    capture = Points(POOLER_ONLY_GROUP, [
        Point("hidden_states", ("token", "hidden"), "pooler input", "Hidden States", REDUNDANT),
        Point("first_token", ("hidden",), "[CLS] vector", "First Token [CLS]", CORE, block="[CLS] row"),
        Point("dense", ("hidden",), "pooler W·[CLS]", "First Token [CLS] Linear Layer", CORE,
              block="W_pool·x", weight="dense.weight", weight_block="W_pool"),
        Point("activation", ("hidden",), "pooled (tanh)", "First Token [CLS] Tanh Activation Function", CORE,
              block="tanh = h_pooled"),
    ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tap(self, "hidden_states", x)                                             # (B, T, H)
        first = tap(self, "first_token", x[:, 0])                                 # (B, H)
        first = tap(self, "dense", self.dense(first))
        return tap(self, "activation", self.activation(first))


# ─── the model ──────────────────────────────────────────────────────────────────────────────
@dataclass
class BertModelOutput:
    """What BertModel returns. Padding rows of the tensors are zero on the fast (unpadded) path, and so are the
    last layer's rows outside ``output_rows`` when it is given."""

    sequence_output: torch.Tensor                    # (B, T, H) last layer, every token
    pooled_output: torch.Tensor | None               # (B, H) tanh(dense([CLS])); None without a pooler
    layer_outputs: list[torch.Tensor]                # L × (B, T, H), or (N, H) real tokens when `unpadded`
    embedding_output: torch.Tensor                   # (B, T, E); E = H but in ALBERT
    attentions: list[torch.Tensor] | None = None     # L × (B, nh, T, T) when output_attentions
    unpadded: Unpadded | None = None                 # where the real tokens of `layer_outputs` rows go

    @functools.cached_property
    def encoder_outputs(self) -> list[torch.Tensor]:
        """L × (B, T, H), the last is ``sequence_output``: the layers padded back only when asked for (most
        callers read the last layer alone)."""
        pad = self.unpadded.pad if self.unpadded is not None else None
        return [pad(o) if pad is not None and o.dim() == 2 else o for o in self.layer_outputs]

    @property
    def last_hidden_state(self) -> torch.Tensor:  # transformers' name
        return self.sequence_output


class BertModel(BertPreTrainedModel):
    base_model_prefix = ""
    # The dtype the fast path's residual stream runs in, autocast off: None keeps the embeddings' (fp32, with
    # the matmuls under the caller's autocast). glassbert.quantize sets bf16 on a model it prepares for bf16
    # inference, whose Linear weights it cast: then every layer computes in bf16, as a model cast to bf16 does,
    # but the embeddings and LayerNorm weights stay fp32 (docs/precision.md has each choice's error).
    residual_dtype: torch.dtype | None = None

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.init_weights()

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_attentions: bool = False,
                position_ids: torch.Tensor | None = None, output_rows: torch.Tensor | None = None) -> BertModelOutput:
        """``attention_mask``: (B, T) 1 = token, 0 = padding; or (B, T, T), row i = the keys token i may see
        (packed rows: several documents per row, each seeing only itself; a token is real where it sees
        itself), as transformers takes it. ``position_ids`` (B, T): default 0 … T−1 (packed rows restart).

        ``output_rows`` (B, T) bool: the tokens whose last-layer output is wanted (pretraining: the masked
        tokens and [CLS]). On the fast path the last layer then computes only those rows after attending
        to every token (MosaicBERT's subset trick): the same numbers there, zeros in the other rows of
        ``sequence_output``. The explicit path ignores it and computes every row."""
        input_ids, token_type_ids, attention_mask, position_ids = self._check_inputs(
            input_ids, token_type_ids, attention_mask, position_ids)
        x = self.embeddings(input_ids, token_type_ids, position_ids)              # (B, T, H)
        explicit = output_attentions or capturing() or self.config.attn_implementation == "eager"
        dtype = None if explicit else self.residual_dtype
        mask = additive_mask(attention_mask, dtype or x.dtype)                    # (B, 1, 1, T) | (B, 1, T, T)
        tokens = real_tokens(attention_mask)                                      # (B, T)

        packing = None
        if not explicit and not bool(tokens.all()):
            packing = Unpadded.from_mask(tokens)
        hidden = packing.unpad(x) if packing is not None else x                  # (N, H) | (B, T, H)

        wanted = last_rows = None  # the rows the last layer computes: of the B*T positions, of the layer's input
        if output_rows is not None and not explicit:
            wanted = Unpadded.from_mask(output_rows.bool() & tokens.bool())
            index = wanted.indices if packing is None else (tokens.reshape(-1).cumsum(0) - 1)[wanted.indices]
            last_rows = Rows(index, wanted.to_front())
        with torch.autocast(x.device.type, enabled=False) if dtype else contextlib.nullcontext():
            hidden = hidden.to(dtype) if dtype else hidden
            outputs, attentions = self.encoder(hidden, mask, packing, explicit, last_rows)
            if wanted is not None:
                outputs[-1] = wanted.pad(outputs[-1])                             # (B, T, H), zeros elsewhere
            elif packing is not None:
                outputs[-1] = packing.pad(outputs[-1])                            # (B, T, H)
            sequence_output = outputs[-1]
            pooled = self.pooler(sequence_output) if self.pooler is not None else None
        if dtype:  # what callers get is fp32, as under autocast
            sequence_output = outputs[-1] = sequence_output.float()
            pooled = pooled.float() if pooled is not None else None
        return BertModelOutput(sequence_output, pooled, outputs, x, attentions if output_attentions else None,
                               packing)

    def _check_inputs(self, input_ids, token_type_ids, attention_mask, position_ids=None):
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"input_ids must be a LongTensor of shape (batch, length), got {type(input_ids).__name__}")
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if input_ids.dim() != 2 or input_ids.numel() == 0:
            raise InputError(f"input_ids must have shape (batch, length) with length ≥ 1, got {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        cfg = self.config
        if T > cfg.max_position_embeddings:
            raise InputError(f"sequence length {T} exceeds max_position_embeddings {cfg.max_position_embeddings}: "
                             f"truncate the input (e.g. tokenizer max_length={cfg.max_position_embeddings})")
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= cfg.vocab_size:
            raise InputError(f"input_ids contain id {hi if hi >= cfg.vocab_size else lo} outside the vocabulary "
                             f"of {cfg.vocab_size}: was the text encoded with this model's tokenizer?")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        square = attention_mask.dim() == 3  # (B, T, T): which keys each token sees (packed rows)
        for name, t in (("token_type_ids", token_type_ids), ("attention_mask", attention_mask),
                        ("position_ids", position_ids)):
            if t is None:
                continue
            if t.dim() == 1:
                t = t[None]
            wanted = (B, T, T) if name == "attention_mask" and square else (B, T)
            if tuple(t.shape) != wanted:
                also = " or (batch, length, length)" if name == "attention_mask" else ""
                raise InputError(f"{name} has shape {tuple(t.shape)} but input_ids has {(B, T)}: it must be "
                                 f"(batch, length){also}")
        token_type_ids = token_type_ids.view(B, T)
        attention_mask = attention_mask.view(B, T, T) if square else attention_mask.view(B, T)
        if int(token_type_ids.max()) >= cfg.type_vocab_size or int(token_type_ids.min()) < 0:
            raise InputError(f"token_type_ids must be in [0, {cfg.type_vocab_size}), got max {int(token_type_ids.max())}")
        if position_ids is not None:
            position_ids = position_ids.view(B, T)
            if int(position_ids.min()) < 0 or int(position_ids.max()) >= cfg.max_position_embeddings:
                raise InputError(f"position_ids must be in [0, {cfg.max_position_embeddings}), got "
                                 f"{int(position_ids.min())} … {int(position_ids.max())}")
        return input_ids, token_type_ids, attention_mask, position_ids


def pool(sequence_output: torch.Tensor, attention_mask: torch.Tensor | None, how: str,
         pooled_output: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, H) → (B, H) by the mean of the real tokens, the [CLS] row, or the pooler's output."""
    if how == "cls":
        return sequence_output[:, 0]
    if how in ("pooled", "pooler"):
        return pooled_output
    if attention_mask is None:
        return sequence_output.mean(1)
    mask = attention_mask[..., None].to(sequence_output.dtype)                   # (B, T, 1)
    return (sequence_output * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


__all__ = ["Dropout", "dropout", "BertModel", "BertModelOutput", "BertEmbeddings", "BertEncoder", "POOLER_ONLY_GROUP", "BertLayer",
           "BertSelfAttention", "BertPooler", "pool", "ACT2FN"]

