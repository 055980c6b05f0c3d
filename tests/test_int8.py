"""--precision int8's layer (glassbert.quantize.Int8Linear): int8 weights with one scale per output row, int8
activations with one scale per token, multiplied by torch._int_mm into exact int32 sums. Its output is the
quantized arithmetic itself (against float64), close to the fp32 layer, the same for any shape torch._int_mm
is given, and, the point of one scale per token, a text's numbers do not depend on what it is batched with."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import glassbert as gb
from glassbert.embed import Embedder
from glassbert.model import BertModel
from glassbert.precision import cpu_flags
from glassbert.quantize import Int8Linear, prepared_copy, quantize_int8, weight_levels

ROOT = Path(__file__).resolve().parents[1]


def reference(layer: Int8Linear, linear: nn.Linear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantized arithmetic in float64, from the fp32 layer's own weights: (the int8 layer's output as
    float64, each element's size before rounding: |s_t s_o Σ q w| + |b|) for ``x`` (M, in)."""
    w = linear.weight.detach().float()
    w_scale = w.abs().amax(1) / layer.levels                                      # (out,)
    wq = torch.round(w / w_scale[:, None]).clamp(-layer.levels, layer.levels)
    assert torch.equal(wq.to(torch.int8), layer.weight)                          # the weights as stored
    x_scale = x.abs().amax(1, keepdim=True) / 127                                # (M, 1), fp32 as the layer
    xq = torch.round(x / x_scale)
    assert xq.abs().max() <= 127
    product = (xq.double() @ wq.double().t()) * x_scale.double() * w_scale.double()
    bias = linear.bias.detach().double() if linear.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    return product + bias, product.abs() + bias.abs()


@pytest.mark.parametrize("rows, n_in, n_out", [(5, 384, 1152), (600, 1536, 384), (3, 7, 3), (1, 384, 1536)])
def test_int8_linear_is_the_quantized_arithmetic_to_float_rounding(rows, n_in, n_out):
    """The int32 sums are exact, so the layer is off the float64 reference only by fp32's rounding of two
    products and a sum (a few 1e-8 of each element's size; 1e-6 allowed), in blocks (600 rows) or not."""
    torch.manual_seed(0)
    linear = nn.Linear(n_in, n_out)
    layer = Int8Linear(linear)
    x = torch.randn(rows, n_in) * torch.rand(rows, 1) * 10                       # tokens of different sizes
    want, size = reference(layer, linear, x)
    got = layer(x)
    assert got.dtype == torch.float32 and got.shape == (rows, n_out)
    assert ((got.double() - want).abs() <= 1e-6 * size).all()


def test_int8_linear_is_close_to_the_fp32_layer():
    """Against the fp32 nn.Linear on Gaussian inputs: each token's output within 2 % (relative L2; 0.8-0.9 %
    measured), biases and zero tokens exact."""
    torch.manual_seed(1)
    for n_in, n_out in ((384, 1536), (1536, 384)):
        linear = nn.Linear(n_in, n_out)
        layer = Int8Linear(linear)
        x = torch.randn(300, n_in)
        x[7] = 0
        want, got = linear(x), layer(x)
        relative = (got - want).norm(dim=1) / want.norm(dim=1)
        assert relative.max() < 0.02, relative.max()
        assert torch.equal(got[7], linear.bias.detach())


def test_int8_linear_shapes():
    """What torch._int_mm refuses on the CPU (a 3-D input) is reshaped, and what it takes (torch 2.13: any 2-D
    int8 pair, one row, no rows, sizes not multiples of 8, checked here so an upgrade that refuses them shows)
    gives the same numbers; a row's output does not depend on the block it falls in; no bias; bf16 in, bf16 out."""
    torch.manual_seed(2)
    linear = nn.Linear(24, 40)
    layer = Int8Linear(linear)
    x = torch.randn(2 * Int8Linear.BLOCK + 37, 24)                              # two blocks, the second longer
    full = layer(x)
    with pytest.raises(RuntimeError, match="dimension 2"):                       # why forward reshapes
        torch._int_mm(torch.zeros(2, 3, 8, dtype=torch.int8), torch.zeros(8, 4, dtype=torch.int8))
    even = len(x) - len(x) % 3                                                   # still two blocks
    assert torch.equal(layer(x[:even].view(3, -1, 24)), full[:even].view(3, -1, 40))
    assert torch.equal(layer(x[:1]), full[:1]) and torch.equal(layer(x[-1]), full[-1])
    assert torch.equal(layer(x[100:300]), full[100:300])
    assert layer(x[:0]).shape == (0, 40)
    assert torch.equal(layer(x.t().contiguous().t()[:9]), full[:9])            # a non-contiguous input
    odd = nn.Linear(7, 3)
    want, size = reference(Int8Linear(odd), odd, x[:5, :7])
    assert ((Int8Linear(odd)(x[:5, :7]).double() - want).abs() <= 1e-6 * size).all()
    plain = nn.Linear(24, 40, bias=False)
    want, size = reference(Int8Linear(plain), plain, x[:20])
    assert ((Int8Linear(plain)(x[:20]).double() - want).abs() <= 1e-6 * size).all()
    low = layer(x[:10].bfloat16())
    assert low.dtype == torch.bfloat16


def test_quantize_int8_replaces_every_linear_and_keeps_the_model_working():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Sequential(nn.Linear(16, 4)))
    x = torch.randn(6, 8)
    want = model(x)
    assert quantize_int8(model) is model
    assert [type(m).__name__ for m in model.modules()].count("Int8Linear") == 2
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert ((model(x) - want).norm() / want.norm()) < 0.02


@pytest.mark.skipif(not {"avx512_vnni", "amx_int8"} & cpu_flags(), reason="a CPU with VNNI")
def test_weights_keep_8_bits_where_the_cpu_has_vnni():
    assert weight_levels() == 127


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN's x86 kernels")
def test_without_vnni_the_weights_keep_7_bits_and_the_sums_stay_exact():
    """oneDNN limited to AVX2 (no VNNI, as on the older CPUs) saturates its int16 pair sums with 8-bit weights:
    weight_levels() finds that and takes 7, and the layer is again the exact quantized arithmetic."""
    script = (
        "import torch\n"
        "from glassbert.quantize import Int8Linear, weight_levels\n"
        "a = torch.full((4, 64), 127, dtype=torch.int8)\n"
        "print(torch.equal(torch._int_mm(a, a.t()), torch.full((4, 4), 64 * 127 * 127, dtype=torch.int32)))\n"
        "torch.manual_seed(0)\n"
        "linear = torch.nn.Linear(384, 96)\n"
        "x = torch.randn(50, 384)\n"
        "layer = Int8Linear(linear)\n"
        "s = x.abs().amax(1, keepdim=True) / 127\n"
        "want = (torch.round(x / s).double() @ layer.weight.double().t()) * s.double() * layer.weight_scale.double()"
        " + linear.bias.double()\n"
        "print(weight_levels(), ((layer(x).double() - want).abs().max() / want.abs().max()).item())\n")
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    exact_at_8_bits, line = out.splitlines()
    levels, error = line.split()
    assert exact_at_8_bits == "False" and levels == "63" and float(error) < 1e-6, out


TEXTS = ["Arrived stale.", "These are the best tasting gummy fruits I have ever eaten, and the kids agree.",
         "My dog loves these treats, but they smell awful and the bag tears open on the way home every time.",
         "Too sweet.", "The coffee is smooth, not bitter, and cheaper than the store."]


def test_a_texts_int8_numbers_do_not_depend_on_its_batch():
    """One scale per token and exact int32 sums: a text's last layer, on its real tokens, is identical encoded
    alone or in a padded batch with longer and shorter texts (with one scale per call it is not)."""
    torch.manual_seed(4)
    model = BertModel(gb.BertConfig.preset("mini", vocab_size=300)).eval()
    int8 = prepared_copy(model, "int8", "cpu")
    lengths = [5, 17, 40, 2]
    ids = torch.randint(5, 300, (len(lengths), max(lengths)))
    mask = (torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]).long()
    with torch.no_grad():
        batch = int8(ids, attention_mask=mask).sequence_output
        for row, n in enumerate(lengths):
            alone = int8(ids[row:row + 1, :n]).sequence_output[0]
            assert torch.equal(alone, batch[row, :n]), row


def test_embedder_int8_vectors_are_the_same_alone_or_batched(minilm_path):
    """MiniLM's int8 vector of a text, encoded alone and in a batch with texts of other lengths: identical."""
    embedder = Embedder(minilm_path, precision="int8")
    batched = embedder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.array_equal(embedder.encode([text])[0], batched[i]), text
    fp32 = Embedder(minilm_path).encode(TEXTS)
    assert (fp32 * batched).sum(1).min() > 0.98


def test_for_inference_int8_leaves_no_fp32_linear(minilm_path):
    from glassbert.quantize import for_inference
    from glassbert.registry import load_as
    model = load_as(minilm_path)
    assert for_inference(model, "int8", "cpu") == "int8"
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert isinstance(model.encoder.layer[0].attention.self.qkv, Int8Linear)
