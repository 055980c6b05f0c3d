"""What an explanation looks like: on the terminal (tokens on green or red, or with their numbers; conductance as
a layers × tokens table) and as a picture (bars of the tokens' attributions, or a layers × tokens map).

    from glassbert.explain import explain, render_terminal, plot
    [r] = explain("runs/sentiment", "the soup was great .")
    print(render_terminal(r, color=False))
    plot(r, "ig.png")
"""
from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runfiles import atomic_write_with, check_target_file
from .attribution import MIN_TOLERANCE, PARTS, Explanation


# ─── the terminal ───────────────────────────────────────────────────────────────────────────
# xterm-256 backgrounds, faint to strong: green pushes the target up, red pulls it down (Captum's colours)
_GREENS = (194, 157, 120, 77, 34)
_REDS = (224, 217, 210, 203, 160)


def _shade(value: float, scale: float) -> str:
    """The background for ``value`` on a scale whose largest |value| is ``scale``; none below 5 % of it."""
    if scale <= 0 or abs(value) < 0.05 * scale:
        return ""
    level = min(4, int(abs(value) / scale * 5))
    code = (_GREENS if value > 0 else _REDS)[level]
    return f"\x1b[48;5;{code}m\x1b[38;5;{16 if level < 3 else 231}m"


def _decimals(scale: float) -> int:
    """Decimals that show the largest |value| with three significant digits (at least 3, at most 8)."""
    return 3 if scale <= 0 else min(8, max(3, 2 - math.floor(math.log10(scale))))


def _headline(r: Explanation) -> list[str]:
    text = r.text if r.pair is None else f"{r.text} ‖ {r.pair}"
    what = "integrated gradients" if r.method == "ig" else "layer conductance"
    lines = [f"text: {text}",
             f"{what} · target: {r.target} · p = {r.probability:.4f} (baseline {r.baseline_probability:.4f}, "
             f"difference {r.difference:+.4f}) · predicted: {r.prediction} ({r.predicted_probability:.4f})",
             f"delta {r.delta:+.2g} after {r.steps} steps ({'within' if r.converged else 'ABOVE'} the tolerance "
             f"{r.tolerance:.2g}) · {r.seconds:.2f} s"]
    return lines


def _wrap(cells: Sequence[tuple[str, str]], width: int) -> list[str]:
    """Lay out (shown, visible) cells on lines of at most ``width`` visible characters."""
    lines, line, used = [], "", 0
    for shown, visible in cells:
        if used and used + 1 + len(visible) > width:
            lines.append(line)
            line, used = "", 0
        line += (" " if used else "") + shown
        used += (1 if used else 0) + len(visible)
    if line:
        lines.append(line)
    return lines


def render_terminal(result: Explanation, color: bool = False, width: int | None = None) -> str:
    """The tokens with their attributions. ``color``: tokens on green (for the target) or red (against)
    backgrounds, stronger for larger |attribution|; without it plain text with the numbers. Conductance:
    one line per token, one column per layer."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    reset = "\x1b[0m"
    lines = _headline(result)
    floor = MIN_TOLERANCE  # colours never finer than 0.001 of probability: noise stays uncoloured
    if result.method == "ig":
        values = result.attributions or []
        scale = max((abs(v) for v in values), default=0.0)
        shade_scale = max(scale, floor)
        d = _decimals(scale)
        lines.append(f"attribution per token (sum {sum(values):+.{d}f}; the largest |value| is {scale:.{d}f}):")
        cells = []
        for tok, v in zip(result.tokens, values):
            if color:
                shade = _shade(v, shade_scale)
                cells.append((f"{shade}{tok}{reset}" if shade else tok, tok))
            else:
                cells.append((f"{tok}({v:+.{d}f})",) * 2)
        lines += ["  " + line for line in _wrap(cells, width - 2)]
        if result.parts is not None:
            p = result.parts
            lines.append(f"per sub-embedding (baseline [PAD] ids, position 0, segment 0: p = "
                         f"{p.baseline_probability:.4f}; delta {p.delta:+.2g} after {p.steps} steps):")
            w = max(len(t) for t in result.tokens)
            d = _decimals(max(abs(v) for v in p.word + p.position + p.segment))
            c = d + 4
            lines.append(f"  {'token':<{w}}  {'word':>{c}} {'position':>{c}} {'segment':>{c}}")
            for i, tok in enumerate(result.tokens):
                lines.append(f"  {tok:<{w}}  {p.word[i]:>+{c}.{d}f} {p.position[i]:>+{c}.{d}f} "
                             f"{p.segment[i]:>+{c}.{d}f}")
    else:
        layers = result.layers or []
        scale = max((abs(v) for row in layers for v in row), default=0.0)
        shade_scale = max(scale, floor)
        w = max([5, *(len(t) for t in result.tokens)])
        d = _decimals(scale)
        c = d + 4
        lines.append(f"conductance per layer (columns) and token (rows); each column sums to about "
                     f"{result.difference:+.{d}f}:")
        lines.append(f"  {'#':>3} {'token':<{w}} " + " ".join(f"{'L' + str(i + 1):>{c}}" for i in range(len(layers))))
        for t, tok in enumerate(result.tokens):
            cells = []
            for row in layers:
                text = f"{row[t]:>+{c}.{d}f}"
                shade = _shade(row[t], shade_scale) if color else ""
                cells.append(f"{shade}{text}{reset}" if shade else text)
            lines.append(f"  {t:>3} {tok:<{w}} " + " ".join(cells))
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


# ─── pictures ───────────────────────────────────────────────────────────────────────────────
def plot(results: Explanation | Sequence[Explanation], path: str | Path, *, overwrite: bool = False) -> Path:
    """A PNG: per explanation, a bar chart of the tokens' IG attributions, or a layers × tokens heatmap of
    the conductance (green for the target, pink against, 0 white). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = check_target_file(path, overwrite=overwrite, option="--png")
    items = [results] if isinstance(results, Explanation) else list(results)
    if not items:
        raise InputError("nothing to plot: no explanations")
    longest = max(len(r.tokens) for r in items)
    width = min(40.0, max(7.0, 0.28 * longest + 2.0))
    panels = [p for r in items for p in ([(r, False)] + ([(r, True)] if r.parts is not None else []))]
    heights = [3.6 if r.method == "ig" else 1.2 + 0.35 * len(r.layers or []) + 1.1 for r, _ in panels]
    fig = Figure(figsize=(width, sum(heights) + 0.4 * len(panels)))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    for k, (r, split) in enumerate(panels):
        ax = fig.add_subplot(grid[k])
        if split:
            _plot_parts(ax, r, longest)
            continue
        title = (f"{'integrated gradients' if r.method == 'ig' else 'layer conductance'} · {r.target} · "
                 f"p {r.probability:.3f} (baseline {r.baseline_probability:.3f}) · delta {r.delta:+.1g}, "
                 f"{r.steps} steps")
        text = r.text if len(r.text) <= 110 else r.text[:108] + "…"
        ax.set_title(f"{text}\n{title}", fontsize=9, loc="left")
        x = range(len(r.tokens))
        if r.method == "ig":
            values = r.attributions or []
            ax.bar(x, values, color=["#1a9641" if v >= 0 else "#c51b7d" for v in values], width=0.8)
            ax.axhline(0, color="#555555", linewidth=0.6)
            ax.set_ylabel("attribution")
            ax.set_xlim(-0.6, len(r.tokens) - 0.4)
        else:  # each layer on its own scale (a pooler's last layer puts it all on [CLS]); its largest |value| beside
            import numpy as np

            data = np.array(r.layers, dtype=float)
            largest = np.maximum(np.abs(data).max(axis=1, keepdims=True), MIN_TOLERANCE)
            image = ax.imshow(data / largest, cmap="PiYG", vmin=-1, vmax=1, aspect="auto", origin="lower",
                              interpolation="nearest")
            ax.set_yticks(range(len(data)), [f"layer {i + 1} (max {m:.2g})" for i, m in enumerate(largest[:, 0])],
                          fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="÷ the layer's largest |value|")
        ax.set_xticks(list(x), r.tokens, rotation=60 if len(r.tokens) > 8 else 0, ha="right" if len(r.tokens) > 8
                      else "center", fontsize=8 if longest <= 80 else 6)
    fig.tight_layout()
    return atomic_write_with(out, lambda tmp: fig.savefig(tmp, dpi=100))


def _plot_parts(ax: Any, r: Explanation, longest: int) -> None:
    """Integrated gradients per sub-embedding: three bars per token."""
    p = r.parts
    ax.set_title(f"per sub-embedding (baseline [PAD] ids, position 0, segment 0: p {p.baseline_probability:.3f}) · "
                 f"delta {p.delta:+.1g}, {p.steps} steps", fontsize=9, loc="left")
    for k, (name, values, colour) in enumerate(zip(PARTS, (p.word, p.position, p.segment),
                                                   ("#333333", "#3182bd", "#e6550d"))):
        ax.bar([i + (k - 1) * 0.27 for i in range(len(values))], values, width=0.27, color=colour, label=name)
    ax.axhline(0, color="#555555", linewidth=0.6)
    ax.set_ylabel("attribution")
    ax.set_xlim(-0.6, len(r.tokens) - 0.4)
    ax.legend(fontsize=8, ncols=3, loc="best")
    ax.set_xticks(range(len(r.tokens)), r.tokens, rotation=60 if len(r.tokens) > 8 else 0,
                  ha="right" if len(r.tokens) > 8 else "center", fontsize=8 if longest <= 80 else 6)


__all__ = ["render_terminal", "plot"]
