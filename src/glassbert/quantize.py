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
    int8 ─▶ torch's dynamic quantization of every nn.Linear (Q, K, V fused first): int8 weights with one scale per
            output row, activations quantized per call (torch.ao.quantization.quantize_dynamic on its x86/fbgemm
            kernels); fp32 in and fp32 out, so vectors and probabilities come back in fp32. On a CPU with VNNI
            the activations use all 8 bits: torch's layer keeps 7 (``reduce_range``, against the int16 overflow of
            the older AVX2 kernels), which on MiniLM leaves sentence vectors at cosine 0.977 to fp32, against 0.994
            with 8 (200 fine-food reviews)

Both bf16 and int8 models run attention on each text's own tokens (``unpad.attend_each_row``): no padding in
Q, K, V and no mask. ``for_inference(model, precision, device)`` does it in place and returns what the model now runs as; it is
idempotent (a model already prepared is left as it is). A prepared model is for inference only: bf16 weights
need the autocast ``precision_context`` gives; int8 layers have no gradients.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from .errors import InputError
from .precision import cpu_flags, resolve

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


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # u8·s8 products summed in int32: no int16 overflow


def full_range_activations(flags: set[str] | None = None) -> bool:
    """Whether int8 layers may quantize activations to all 8 bits here: a CPU with VNNI (or AMX int8)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in VNNI_FLAGS)


def _dynamic_linear(full_range: bool) -> type:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class Int8Linear(DynamicLinear):
        """torch's dynamic int8 Linear, its activations quantized to 8 bits where ``full_range`` (else 7)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=not full_range)
            return y.to(x.dtype)

    return Int8Linear


def quantize_int8(model: nn.Module, full_range: bool | None = None) -> nn.Module:
    """``model`` with every nn.Linear dynamically quantized to int8, one scale per output row, in place
    (``full_range``: 8-bit activations; default where the CPU has VNNI)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    full_range = full_range_activations() if full_range is None else full_range
    with warnings.catch_warnings():  # torch announces quantized tensors will move to torchao; they still run
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                                mapping={nn.Linear: _dynamic_linear(full_range)}, inplace=True)


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
           "full_range_activations", "PREPARED"]
