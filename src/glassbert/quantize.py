"""A model loaded for inference, made ready for its precision once, when it is loaded (glassbert.precision):

    fp32 ─▶ as loaded: the parity-tested weights, untouched
    bf16 ─▶ every nn.Linear's weight and bias cast to bf16 once (a copy: a tied embedding stays fp32), each
            attention's Q, K and V fused into one bf16 layer, and the encoder set to compute in bf16
            (``BertModel.residual_dtype``): the embeddings are summed and normalized in fp32, then every layer
            runs in bf16 with autocast off — residual stream, LayerNorm (fp32 weights, fp32 statistics), GELU —
            as a model cast to bf16 does; attention runs in fp32 where the CPU's bf16 attention is the slower
            (no AMX). Against fp64, MiniLM's last layer is 1.0e-2 off (relative), transformers' bf16-cast model
            1.25e-2, autocast with an fp32 residual stream 0.73e-2; sentence vectors stay at cosine ≥ 0.9999
            (docs/precision.md). The heads run under the caller's autocast; outputs come back in fp32
    int8 ─▶ every nn.Linear (Q, K, V fused first) replaced by an :class:`Int8Linear`: int8 weights with one scale
            per output row, made once; activations quantized on every call with one scale per token (symmetric,
            ±127), multiplied by ``torch._int_mm`` into exact int32 sums, scaled back to fp32. fp32 in and fp32
            out. One scale per token, where torch's dynamic int8 Linear took one per call (the whole batch), keeps
            the typical token's 8 bits from being spent on a few outlier tokens, and makes a text's numbers
            independent of its batch, bit for bit: on the fine-food reviews (docs/precision.md) MiniLM's vectors
            went from cosine 0.9937 (lowest 0.981) to fp32's to 0.9977 (0.995), at the same speed (1 thread,
            2.5× fp32). Where the CPU has no VNNI the weights keep 7 bits (:func:`weight_levels`)

Both bf16 and int8 models run attention on each text's own tokens (``unpad.attend_each_row``): no padding in
Q, K, V and no mask. ``for_inference(model, precision, device)`` does it in place and returns what the model now runs as; it is
idempotent (a model already prepared is left as it is). A prepared model is for inference only: bf16 weights
need the autocast ``precision_context`` gives; int8 layers have no gradients.
"""
from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from .errors import InputError
from .precision import resolve

# the marker a prepared model carries: what for_inference made of it
PREPARED = "_glassbert_inference_precision"


def runs_as(model: nn.Module) -> str | None:
    """What ``model`` was prepared as (fp32, bf16, int8), or None when :func:`for_inference` has not seen it."""
    return getattr(model, PREPARED, None)


def _attentions(model: nn.Module):
    """The modules with query, key and value Linear layers and a ``qkv`` slot (BertSelfAttention)."""
    for module in model.modules():
        if hasattr(module, "qkv") and all(isinstance(getattr(module, n, None), nn.Linear)
                                          for n in ("query", "key", "value")):
            yield module


def fuse_qkv(model: nn.Module) -> None:
    """Give each attention one Linear holding its Q, K and V rows (the fast path's fused GEMM, built once
    instead of concatenating the weights on every call)."""
    for attention in _attentions(model):
        q, k, v = attention.query, attention.key, attention.value
        fused = nn.Linear(q.in_features, q.out_features + k.out_features + v.out_features,
                          device=q.weight.device, dtype=q.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
            fused.bias.copy_(torch.cat([q.bias, k.bias, v.bias]))
        fused.requires_grad_(False)
        attention.qkv = fused


def cast_linears_bf16(model: nn.Module) -> None:
    """Every nn.Linear's weight and bias as a bf16 copy of its own (a weight tied to an embedding is copied, so
    the embedding keeps its fp32 one)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            for name in ("weight", "bias"):
                p = getattr(module, name)
                if p is not None and p.dtype != torch.bfloat16:
                    setattr(module, name, nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False))


@functools.cache
def weight_levels() -> int:
    """The int8 weights' largest level on this CPU: 127 where torch._int_mm multiplies full-range operands
    exactly (VNNI or AMX: the u8·s8 products are summed straight into int32), else 63. Without VNNI, oneDNN's
    int8 GEMM (which torch._int_mm calls) sums pairs of u8·s8 products in int16, which saturates unless the
    weights keep 7 bits: measured here under ``ONEDNN_MAX_CPU_ISA=AVX512_CORE`` and ``AVX2``, errors up to 1.8e5
    in the int32 sums with 8-bit weights, none with 7-bit ones. Found by trying it (every operand at its
    extreme), not from the CPU's flags, so any kernel that saturates is caught."""
    for levels in (127, 63):
        a = torch.full((4, 64), 127, dtype=torch.int8)
        w = torch.full((8, 64), levels, dtype=torch.int8)
        if all(torch.equal(torch._int_mm(x, y.t()), x.long().mm(y.long().t()).int())
               for x in (a, -a, a[:1]) for y in (w, -w)):
            return levels
    raise InputError("--precision int8 needs torch._int_mm to multiply int8 matrices exactly, which it does not "
                     "on this CPU; use fp32 or bf16")


class Int8Linear(nn.Module):
    """An nn.Linear in int8: y_to = s_t s_o Σ_k q_tk w_ok + b_o, from int8 weights ``w`` with one scale ``s_o``
    per output row (symmetric, ±:func:`weight_levels`, made once) and int8 activations with one scale ``s_t`` per
    token (symmetric, ±127, made on every call from the token's largest |value|), multiplied by
    ``torch._int_mm`` into exact int32 sums. Since each token's numbers depend on that token alone and the sums
    are exact, a text's output is bit for bit the same whatever else is in the batch.

    Symmetric, as torchao's dynamic int8 quantizes activations. An asymmetric scale (each token's min to max on
    256 levels, which gains a bit on the GELU outputs, all ≥ −0.17) needs a zero-point term, one more pass over
    the output: on the fine-food reviews it kept 99.7 % of a classifier's fp32 labels where this keeps 99.1–99.4 %
    (the per-call layer 99.0 %), but ran 6-14 % slower than the per-call layer (docs/precision.md).

    The tokens go in blocks of :attr:`BLOCK` rows, the working memory (fp32 and int8 copies of a block's input)
    reused by each block, the int32 sums made in the output's own memory: three passes over the input (max |x|,
    x / s_t rounded, to int8) and three over the output (to fp32, · s_t, · s_o + b) besides the GEMM. On
    MiniLM's layers (1 thread, Zen 4) torch._int_mm runs at ~435 GOP/s, a little faster than the GEMM inside
    torch's dynamic int8 Linear, and these passes take that lead back: texts/s equal within the noise (±3 %).
    fp32 out, or the input's dtype."""

    BLOCK = 512  # rows per block (128, 256, 512, 1024 measured: within the noise, 128 slowest); a last
    #              block shorter than this joins the one before

    def __init__(self, linear: nn.Linear, levels: int | None = None) -> None:
        super().__init__()
        levels = weight_levels() if levels is None else levels
        w = linear.weight.detach().float()                                       # (out, in)
        scale = (w.abs().amax(1) / levels).clamp_(min=torch.finfo(torch.float32).tiny)
        self.in_features, self.out_features, self.levels = linear.in_features, linear.out_features, levels
        self.register_buffer("weight", torch.round(w / scale[:, None]).clamp_(-levels, levels).to(torch.int8))
        self.register_buffer("weight_scale", scale)                              # (out,)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weights ±{self.levels}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)                                   # (M, in): torch._int_mm is 2-D
        if rows.dtype != torch.float32:
            rows = rows.float()
        total = rows.shape[0]
        out = rows.new_empty(total, self.out_features)                           # (M, out)
        weight = self.weight.t()                                                 # (in, out)
        if total < 2 * self.BLOCK:  # one block: no working memory to share (fewer operations for a few tokens)
            self._block(rows, weight, out)
        else:
            scale = rows.new_empty(total, 1)                                     # (M, 1): s_t
            scratch = rows.new_empty(2 * self.BLOCK - 1, self.in_features)       # reused by every block
            q = torch.empty(2 * self.BLOCK - 1, self.in_features, dtype=torch.int8)
            start = 0
            while start < total:
                stop = total if total - start < 2 * self.BLOCK else start + self.BLOCK
                m = stop - start
                self._block(rows[start:stop], weight, out[start:stop], scale[start:stop], scratch[:m], q[:m])
                start = stop
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if x.dtype == torch.float32 else out.to(x.dtype)

    def _block(self, x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, scale: torch.Tensor | None = None,
               scratch: torch.Tensor | None = None, q: torch.Tensor | None = None) -> None:
        """``out`` (m, out) = this layer applied to ``x`` (m, in), ``weight`` the int8 weight (in, out); ``scale``
        (m, 1) takes the tokens' scales, ``scratch`` (m, in) fp32 and ``q`` (m, in) int8 are working memory
        (None: new). The int32 sums are made in ``out``'s own memory and turned into floats there (int32 and
        fp32 elements are the same size, so each is read before it is written): converting, then scaling in
        fp32, is 1.5× faster than one int32 × fp32 multiply."""
        scale = torch.maximum(x.amax(1, keepdim=True), x.amin(1, keepdim=True).neg_(), out=scale)  # max |x|
        scale.div_(127).clamp_(min=torch.finfo(torch.float32).tiny)             # s_t; a zero token: q = 0
        rounded = torch.div(x, scale, out=scratch).round_()                      # round(x / s_t), ±127
        q = rounded.to(torch.int8) if q is None else q.copy_(rounded)
        sums = out.view(torch.int32)                                             # (m, out)
        torch._int_mm(q, weight, out=sums)                                       # exact
        out.copy_(sums).mul_(scale)                                              # int32 → fp32, · s_t
        if self.bias is None:
            out.mul_(self.weight_scale)
        else:
            torch.addcmul(self.bias, out, self.weight_scale, out=out)            # · s_o + b


def quantize_int8(model: nn.Module, layer: type[Int8Linear] = Int8Linear, levels: int | None = None) -> nn.Module:
    """``model`` with every nn.Linear replaced by a ``layer`` (an :class:`Int8Linear`) made from it, in place (any
    module: glassbert's models and transformers' alike), its weights ±``levels`` (default :func:`weight_levels`);
    returns ``model``."""
    levels = weight_levels() if levels is None else levels
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, layer(child, levels))
    return model


def for_inference(model: nn.Module, precision: str, device: torch.device | str) -> str:
    """Prepare ``model`` in place for ``precision`` on ``device`` and return what it runs as: fp32, bf16 or int8."""
    want = resolve(precision, device)
    done = runs_as(model)
    if done is not None:
        if done != want:
            raise InputError(f"this model was prepared for {done} inference; load it again to run it in {want}")
        return done
    if want == "int8" and torch.device(device).type != "cpu":
        raise InputError(f"--precision int8 runs on the CPU only (dynamic quantization), not on {device}")
    model.eval()
    if want == "bf16":
        fuse_qkv(model)
        cast_linears_bf16(model)
        for module in model.modules():  # the encoder (BertModel, AlbertModel) computes in bf16 from its embeddings on
            if hasattr(module, "residual_dtype"):
                module.residual_dtype = torch.bfloat16
    elif want == "int8":
        fuse_qkv(model)
        quantize_int8(model)
    for module in model.modules():  # the backbone too, which an Embedder may be given
        object.__setattr__(module, PREPARED, want)
    return want


def prepared_copy(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """``model`` itself when ``precision`` leaves its weights alone (fp32, or already prepared), else a prepared
    deep copy: a caller's model object is never changed under it."""
    want = resolve(precision, device)
    if want == "fp32" or runs_as(model) == want:
        return model
    model = copy.deepcopy(model)
    for_inference(model, want, device)
    return model


__all__ = ["for_inference", "prepared_copy", "runs_as", "fuse_qkv", "cast_linears_bf16", "quantize_int8",
           "Int8Linear", "weight_levels", "PREPARED"]
