"""Attribution on Captum: which tokens, and which layers, made a prediction (``glassbert explain``).

    targets.py       what to explain: ``Target`` (NAME, NAME@POSITION, @POSITION), resolved against the heads
                     a model declares (``model.heads``) and its output on one text
    attribution.py   the Captum engine: ``Explainer`` (integrated gradients, layer conductance, padded batches),
                     ``Explanation``, ``explain()``, ``write_json``
    render.py        the terminal (``render_terminal``) and the picture (``plot``)

    from glassbert.explain import explain, render_terminal, plot
    [r] = explain("runs/sentiment", "the soup was great .")           # the predicted label, by IG
    print(render_terminal(r, color=False))
    plot(r, "ig.png")
    explain("runs/mlm", "the cat [MASK] the mouse .", target="chased", method="conductance")
"""
from .attribution import METHODS, TOLERANCE, Explainer, Explanation, Item, Parts, explain, write_json
from .render import plot, render_terminal
from .targets import PAIR_LABELS, Target

__all__ = ["explain", "Explainer", "Explanation", "Item", "Parts", "Target", "render_terminal", "plot", "write_json",
           "METHODS", "TOLERANCE", "PAIR_LABELS"]
