"""The curves of a run: metrics.jsonl → metrics.png, one panel per metric.

Train rows are a line (each point the mean over the steps since the row before); a ``partial`` row, whose
window is shorter (the run's last, or the first after a resume), is a hollow marker. Evaluations are points
measured at their step: markers, not joined. A ``resume`` row is a dashed vertical line where the run went on
after a stop.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..runfiles import atomic_write_with, read_jsonl


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> None:
    """One panel per metric (loss first) over steps, train and eval lines; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_jsonl(metrics_path)
    skip = {"split", "step", "epoch", "elapsed", "partial"}
    resumes = sorted({r["step"] for r in rows if r.get("split") == "resume" and "step" in r})
    keys = sorted({k for r in rows for k, v in r.items() if k not in skip and isinstance(v, (int, float))})
    keys.sort(key=lambda k: k != "loss")
    if not keys:
        return
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * nrows + 0.4))
    FigureCanvasAgg(fig)
    fig.suptitle(f"{Path(metrics_path).resolve().parent.name}: {len(rows)} metric rows", fontsize=10)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        train = [r for r in rows if r.get("split") == "train" and key in r]
        if train:  # a marker on every point of a short series: a one-epoch run is a dot, not nothing
            line, = ax.plot([r["step"] for r in train], [r[key] for r in train], "-", label="train",
                            marker="o" if len(train) <= 30 else None, markersize=3)
            partial = [r for r in train if r.get("partial")]
            if partial:
                ax.plot([r["step"] for r in partial], [r[key] for r in partial], "o", markersize=6,
                        markerfacecolor="white", color=line.get_color(), label="train, partial window")
        evals = [(r["step"], r[key]) for r in rows if r.get("split") == "eval" and key in r]
        if evals:
            ax.plot(*zip(*evals), "D", label="eval", markersize=4)
        for k, step in enumerate(resumes):
            ax.axvline(step, color="0.5", linestyle="--", linewidth=0.8, label="resumed" if k == 0 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        steps = {r["step"] for r in rows if key in r and "step" in r}
        if len(steps) == 1:  # one step: a tick there, not 9.45 … 10.5
            ax.set_xticks(sorted(steps))
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if key.endswith("loss") and min(values) > 0:
            ax.set_yscale("log")
            if max(values) < 10 * min(values):  # within one decade: 6, 7, 8 — not 6×10⁰ (across decades the
                for axis_ticks in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # default is right)
                    axis_ticks(ScalarFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_with(png_path, lambda tmp: fig.savefig(tmp, dpi=90))


__all__ = ["plot_metrics"]
