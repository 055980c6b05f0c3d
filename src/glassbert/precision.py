"""Precision: fp32, bf16 (autocast), auto, or int8 (inference only), one choice for every command and the one
autocast context.

    --precision fp32 ─▶ no autocast: float32 everywhere (the parity-tested path)
    --precision bf16 ─▶ torch.autocast(device, bfloat16): matmuls in bf16; in training the weights and the
                        optimizer stay fp32; a model loaded for inference has its Linear weights cast to bf16
                        once, at load (glassbert.quantize)
    --precision auto ─▶ bf16 where the hardware has fast bf16 matrix units (a CUDA GPU that supports bf16, or
                        a CPU with Intel AMX or AVX512-BF16), fp32 otherwise
    --precision int8 ─▶ inference only: the Linear layers dynamically quantized to int8 at load
                        (glassbert.quantize); no autocast; fp32 in and out

Training commands default to ``auto`` and refuse int8; inference commands default to ``fp32`` (the others
only when asked). Weights are always saved in fp32: autocast never changes the parameters, only the dtype the
operations inside it compute in.

A CPU has fast bf16 with AMX (``amx_bf16`` and ``amx_tile`` in /proc/cpuinfo's flags, and torch's own check
that it can use the tiles) or with AVX512-BF16 (``avx512_bf16``: AMD Zen 4 and Zen 5, Intel Cooper Lake):
measured 1024³ GEMMs, bf16 against fp32, are 2.3× on a Zen 4, 4.2× on a Zen 5 and 6.5× with AMX, and bf16
trains ALBERT base 1.9× (Zen 4) to 3× (Zen 5) faster; a CPU with neither (AVX2 only) runs bf16 slower than
fp32. The flags are what the CPU itself reports (cpuid), the same the GEMM kernels dispatch on, so no
measurement is needed to trust them.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .errors import InputError

TRAINING_PRECISIONS = ("fp32", "bf16", "auto")
PRECISIONS = TRAINING_PRECISIONS + ("int8",)  # int8: inference only
CPUINFO = Path("/proc/cpuinfo")
AMX_FLAGS = ("amx_bf16", "amx_tile")
AVX512_BF16_FLAG = "avx512_bf16"


def check_precision(precision: str, training: bool = False) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (``training``: of :data:`TRAINING_PRECISIONS`), else a
    one-line InputError."""
    if training and precision == "int8":
        raise InputError("precision int8 is for inference only (embed, classify, serve, …): train in fp32, bf16 "
                         "or auto")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def saved_precision(record: Mapping[str, Any]) -> str:
    """The precision a run's saved settings name (trainer_config.json, pretrain_args.json): their ``precision``;
    in a file written before it had that name, TrainConfig's ``amp`` ("no" was fp32); else ``auto``."""
    if "precision" in record:
        return record["precision"]
    amp = record.get("amp")
    return "fp32" if amp == "no" else amp if amp in PRECISIONS else "auto"


def cpu_flags(cpuinfo: Path | None = None) -> set[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (default /proc/cpuinfo; empty when there is
    none: not Linux)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _torch_can_use_amx() -> bool:
    """torch's own answer: its CPU kernels can use the AMX tiles (the kernel allows them to this process)."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check()) if check is not None else False


def has_amx(flags: set[str] | None = None, torch_check: Callable[[], bool] | None = None) -> bool:
    """Whether this CPU has Intel AMX for bf16: both flags in /proc/cpuinfo (or ``flags``) and torch agrees
    (``torch_check``, default torch's own)."""
    flags = cpu_flags() if flags is None else flags
    return all(f in flags for f in AMX_FLAGS) and (torch_check or _torch_can_use_amx)()


def has_avx512_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU has AVX512-BF16 (``avx512_bf16`` in /proc/cpuinfo, or in ``flags``)."""
    return AVX512_BF16_FLAG in (cpu_flags() if flags is None else flags)


def fast_bf16(device: torch.device | str) -> bool:
    """Whether bf16 matmuls are much faster than fp32 on ``device``: a bf16-capable CUDA GPU, or a CPU with AMX
    or AVX512-BF16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = cpu_flags()
        return has_avx512_bf16(flags) or has_amx(flags)
    return False


@functools.cache
def _cpu_has_amx() -> bool:
    return has_amx()


def attention_in_fp32(t: torch.Tensor) -> bool:
    """Whether SDPA on the bf16 tensor ``t`` should run in fp32 instead: on a CPU without AMX, torch's bf16
    scaled_dot_product_attention is slower than its fp32 one (forward and backward of a base-size layer's
    attention, 2 threads: 26 ms in bf16, 17 ms in fp32 on an AMD Zen 4; 18 and 12 ms on a Zen 5). bf16 matrix
    products are not: training spells attention out in bf16 there (model.BertSelfAttention.products)."""
    return t.dtype == torch.bfloat16 and t.device.type == "cpu" and not _cpu_has_amx()


def use_bf16(precision: str, device: torch.device | str) -> bool:
    """Whether ``precision`` means bf16 autocast on ``device`` (``auto``: where it is fast; int8: never)."""
    check_precision(precision)
    return precision == "bf16" or (precision == "auto" and fast_bf16(device))


def resolve(precision: str, device: torch.device | str) -> str:
    """``fp32``, ``bf16`` or ``int8``: what ``precision`` runs as on ``device``."""
    if precision == "int8":
        return "int8"
    return "bf16" if use_bf16(precision, device) else "fp32"


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled``; otherwise nothing (an outer autocast, if any, stays on)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def precision_context(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in for ``precision`` on ``device`` (inference and training alike)."""
    return autocast(device, use_bf16(precision, device))


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


__all__ = ["PRECISIONS", "TRAINING_PRECISIONS", "check_precision", "has_avx512_bf16", "saved_precision", "cpu_flags", "has_amx", "fast_bf16",
           "use_bf16", "resolve", "autocast", "precision_context", "model_device", "attention_in_fp32"]
