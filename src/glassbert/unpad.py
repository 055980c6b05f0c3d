"""Where the real tokens of a padded batch are: the masks, and the gather that removes padding before the linear
layers (MosaicBERT's unpadding) and puts it back after. model.py's fast path and ALBERT's use these.

    attention_mask (B, T) 1/0 ─▶ Unpadded.from_mask ─▶ indices (N,) of the real tokens in the B*T positions
    x (B, T, D) ─▶ unpad ─▶ (N, D) ─▶ the linear layers ─▶ pad ─▶ (B, T, D), zeros on padding
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Unpadded:
    """The N real tokens of a padded (B, T) batch, as indices into its B*T flattened positions."""

    indices: torch.Tensor  # (N,)
    batch: int
    length: int
    counts: torch.Tensor | None = None  # (B,) real tokens of each row: row b is rows offsets[b] … of the (N, D)

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> "Unpadded":
        B, T = attention_mask.shape
        return cls(attention_mask.reshape(-1).nonzero().squeeze(1), B, T, attention_mask.reshape(B, T).sum(1))

    @functools.cached_property
    def spans(self) -> list[tuple[int, int]]:
        """(start, end) of each row's real tokens in the unpadded (N, D) layout (rows without any left out):
        a row's real tokens are consecutive there, whichever side its padding was on."""
        ends = self.counts.cumsum(0).tolist()
        return [(end - n, end) for n, end in zip(self.counts.tolist(), ends) if n]

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        return gather_rows(x.reshape(self.batch * self.length, -1), self.indices)  # (N, D)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(self.batch * self.length, x.shape[-1])
        return out.index_copy_(0, self.indices, x).view(self.batch, self.length, -1)  # (B, T, D)

    def to_front(self) -> "Unpadded":
        """The same tokens, in the same order, moved to the front of their rows of a (B, R) batch as wide as
        the row with the most (at least 1): ``to_front().pad`` lays M selected rows out for attention as
        queries, R of them a row instead of T."""
        width = max(1, int(self.counts.max())) if self.counts.numel() else 1
        row = torch.div(self.indices, self.length, rounding_mode="floor")          # (M,) the batch row of each
        first = (self.counts.cumsum(0) - self.counts)[row]                         # (M,) its row's first token
        rank = torch.arange(self.indices.numel(), device=self.indices.device) - first
        return Unpadded(row * width + rank, self.batch, width, self.counts)


@dataclass
class Rows:
    """The M token rows a layer computes (pretraining's last layer: the masked tokens and [CLS]; a classifier's:
    [CLS]), every token still attended to as a key."""

    index: torch.Tensor  # (M,) into the layer's input rows: (N, D) unpadded, or (B, T, D) flattened
    queries: Unpadded    # the same M tokens at the front of their rows of a (B, R) batch: attention's queries


class _GatherRows(torch.autograd.Function):
    """``x.index_select(0, indices)`` for indices that never repeat (the real tokens): its gradient is a copy of
    each row back to its place (index_copy), not index_select's general scatter-add, which on a CPU with
    several threads was ~8 % of a bf16 pretraining step (bench/pretrain.py --profile). Same numbers exactly."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(indices)
        ctx.rows = x.shape[0]
        return x.index_select(0, indices)                                         # (N, D)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (indices,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.rows, grad.shape[-1])                            # (B*T, D)
        return out.index_copy_(0, indices, grad), None


def gather_rows(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(R, D) → (N, D): the rows ``indices`` of ``x``, which must not repeat (its gradient copies, never adds)."""
    return _GatherRows.apply(x, indices)


def attend_each_row(qkv: torch.Tensor, packing: Unpadded, heads: int) -> torch.Tensor:
    """Attention of each row's real tokens to each other, on the unpadded (N, 3A) fused Q, K, V: (N, A).

    The same as attention over the padded (B, T) batch with [PAD] keys masked out, without the padding: no
    pad and unpad of Q, K, V and the context, no mask, and Σ Tᵢ² scores instead of B·T² (a batch of varied
    lengths spends most of its attention on padding). One scaled_dot_product_attention call per row."""
    N, three_a = qkv.shape
    size = three_a // (3 * heads)
    out = qkv.new_empty(N, three_a // 3)                                          # (N, A)
    for start, end in packing.spans:
        n = end - start
        q, k, v = qkv[start:end].view(n, 3, heads, size).permute(1, 2, 0, 3)      # 3 × (nh, n, hs)
        context = F.scaled_dot_product_attention(q[None], k[None], v[None])       # (1, nh, n, hs)
        out[start:end].view(n, heads, size).copy_(context[0].transpose(0, 1))
    return out


def take_rows(x: torch.Tensor, rows: Rows | None) -> torch.Tensor:
    """(B, T, D) or (N, D) → (M, D): the token rows ``rows`` (``rows.index`` of the flattened tokens); all when
    None."""
    return x if rows is None else gather_rows(x.reshape(-1, x.shape[-1]), rows.index)


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 1/0 → (B, 1, 1, T), or (B, T, T) → (B, 1, T, T): 0 where attending, the dtype's most negative
    value on padding (and, in packed rows, on the other documents' keys)."""
    keep = (attention_mask[:, None, None, :] if attention_mask.dim() == 2 else attention_mask[:, None]).to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


def real_tokens(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1 where a token is real: the mask itself, or a (B, T, T) mask's diagonal (a token sees itself)."""
    return attention_mask if attention_mask.dim() == 2 else attention_mask.diagonal(dim1=1, dim2=2)


def key_mask(mask: torch.Tensor) -> torch.Tensor:
    """An additive (B, 1, 1, T) or (B, 1, T, T) mask → (B, T): 0 on each token's own key, dtype min on padding."""
    return mask[:, 0, 0, :] if mask.shape[2] == 1 else mask[:, 0].diagonal(dim1=-2, dim2=-1)


__all__ = ["Unpadded", "Rows", "attend_each_row", "gather_rows", "take_rows", "additive_mask", "real_tokens", "key_mask"]
