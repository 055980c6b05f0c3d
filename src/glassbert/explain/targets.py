"""What to explain: the target a user names, resolved against a model's heads and its output on one text.

Targets (``Target.parse``: ``NAME``, ``NAME@POSITION`` or ``@POSITION``; positions count the tokens shown,
[CLS] = 0): a classifier's label (name or index; default the predicted one); the word at a [MASK] (default
the first [MASK], the predicted word); IsNext/NotNext (or an ALBERT's InOrder/Swapped) for a sentence pair;
a tagger's tag at a position (default: the first token tagged other than O); a QA model's ``start`` or
``end`` at a position (default ``start`` at its predicted position).

Which heads a model has is its class's ``heads`` (kinds of :data:`glassbert.pretrained.HEAD_KINDS`); each offers
one kind of target (:data:`HEAD_TARGETS`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import InputError

PAIR_LABELS = {"nsp": ("IsNext", "NotNext"), "sop": ("InOrder", "Swapped")}  # class 0, class 1
# a head's kind (glassbert.pretrained.HEAD_KINDS) → what explain calls it: the kind of target it offers
HEAD_TARGETS = {"classifier": "label", "tagger": "tag", "mlm": "word", "nsp": "nsp", "sop": "sop", "span": "span"}


@dataclass(frozen=True)
class Target:
    """What to explain: ``label`` (a label name or index, a word, IsNext/NotNext, a tag, start/end) and/or
    ``position`` (a token index, [CLS] = 0). Both None: the model's own prediction (see the module doc)."""

    label: str | None = None
    position: int | None = None

    @classmethod
    def parse(cls, text: "str | int | Target | None") -> "Target":
        """``NAME``, ``NAME@POSITION``, ``@POSITION`` (``@`` followed by digits; any other ``@`` is part of
        the name), an int (a label index), or nothing."""
        if text is None or isinstance(text, Target):
            return text or cls()
        if isinstance(text, bool) or not isinstance(text, (str, int)):
            raise InputError(f"target {text!r}: give a label, word, tag or start/end, optionally @POSITION")
        text = str(text).strip()
        name, at, pos = text.rpartition("@")
        if at and re.fullmatch(r"[0-9]{1,9}", pos):
            return cls(name.strip() or None, int(pos))
        return cls(text or None)

    def __str__(self) -> str:
        return (self.label or "") + ("" if self.position is None else f"@{self.position}")


@dataclass(frozen=True)
class Goal:
    """A target resolved against one text: the head, the class explained, and the token it is read at."""

    head: str              # label | word | nsp | sop | tag | start | end
    index: int             # the class: label id, word id, NSP/SOP class, tag id, answer start/end position
    position: int | None   # the token whose output is explained (word, tag)
    name: str              # the class in words
    description: str


def explainable_heads(model: nn.Module) -> list[str]:
    """The heads ``model`` offers, from its class's ``heads``: label, tag, word (MLM), nsp/sop, span (start
    and end). A module without ``heads`` (a bare encoder) offers none."""
    kinds = getattr(model, "heads", ())
    return [target for kind, target in HEAD_TARGETS.items() if kind in kinds]


def pair_head(model: nn.Module) -> str | None:
    """"nsp" or "sop": ``model``'s sentence-pair head, or None."""
    return next((h for h in explainable_heads(model) if h in PAIR_LABELS), None)


class Targets:
    """Targets resolved against a model's heads and its output on a text, and its predictions in words."""

    def __init__(self, model: nn.Module, tokenizer: Any):
        self.model = model
        self.tok = tokenizer
        self.config = model.config

    def resolve(self, target: Target, ids: Sequence[int], tokens: Sequence[str], out: Any) -> Goal:
        """``target`` against one text, given the model's output on it: InputError when it does not fit."""
        heads = explainable_heads(self.model)
        name = type(self.model).__name__
        if not heads:
            raise InputError(f"{name} has no head to explain (a bare encoder): explain a fine-tuned classifier, "
                             "tagger or QA model, or a model with an MLM or NSP head")
        label, position = target.label, target.position
        if position is not None and not 0 <= position < len(ids):
            raise InputError(f"target position {position} is out of range: the text has {len(ids)} tokens "
                             f"(positions 0..{len(ids) - 1}, [CLS] = 0)")
        pair = pair_head(self.model)
        mask_id = getattr(self.tok, "mask_token_id", None)
        has_mask = mask_id in ids
        if "label" in heads:
            return self._label_goal(label, position, out)
        if "tag" in heads:
            return self._tag_goal(label, position, tokens, out)
        if "span" in heads:
            return self._span_goal(label, position, tokens, out)
        wants_pair = pair is not None and label is not None and _match(label, PAIR_LABELS[pair]) is not None
        if "word" in heads and not wants_pair and (has_mask or position is not None or pair is None):
            return self._word_goal(label, position, ids, tokens, out)
        if pair is None:  # pragma: no cover - every head is handled above
            raise InputError(f"{name}: no head fits target {target}")
        return self._pair_goal(pair, label, position, out)

    def shown(self, goal: Goal, tokens: Sequence[str], best: int) -> str:
        """The prediction ``best`` of ``goal``'s head in words."""
        head = goal.head
        if head == "word":
            return self.tok.convert_ids_to_tokens([best])[0]
        if head in ("start", "end"):
            return f"{best} ({tokens[best]!r})" if best < len(tokens) else str(best)
        if head in PAIR_LABELS:
            return PAIR_LABELS[head][best]
        return self._names(best + 1)[best]

    def _label_goal(self, label: str | None, position: int | None, out: Any) -> Goal:
        if position is not None:
            raise InputError(f"a sequence classifier labels the whole text: give the label without @{position}")
        names = self._names(out.logits.shape[-1])
        index = int(out.logits[0].argmax()) if label is None else _class_index(label, names, "label", "classifier")
        return Goal("label", index, None, names[index], f"label {names[index]!r}")

    def _tag_goal(self, label: str | None, position: int | None, tokens: Sequence[str], out: Any) -> Goal:
        names = self._names(out.logits.shape[-1])
        predicted = out.logits[0].argmax(-1).tolist()
        if position is None:  # the first real token tagged as something other than O, else the first token
            real = [p for p in range(len(tokens)) if tokens[p] not in self._special_tokens()]
            position = next((p for p in real if names[predicted[p]] != "O"), real[0] if real else 0)
        index = predicted[position] if label is None else _class_index(label, names, "tag", "tagger")
        return Goal("tag", index, position, names[index],
                    f"tag {names[index]!r} at position {position} ({tokens[position]!r})")

    def _span_goal(self, label: str | None, position: int | None, tokens: Sequence[str], out: Any) -> Goal:
        side = "start" if label is None else label.lower()
        if side not in ("start", "end"):
            raise InputError(f"target {label!r}: a QA model explains the answer's start or end "
                             "(start, end, start@POSITION or end@POSITION)")
        logits = out.start_logits if side == "start" else out.end_logits
        position = int(logits[0].argmax()) if position is None else position
        return Goal(side, position, None, str(position),
                    f"answer {side} at position {position} ({tokens[position]!r})")

    def _word_goal(self, label: str | None, position: int | None, ids: Sequence[int], tokens: Sequence[str],
                   out: Any) -> Goal:
        mask_id = self.tok.mask_token_id
        masks = [p for p, i in enumerate(ids) if i == mask_id]
        if not masks:
            raise InputError("the text has no [MASK]: an MLM target is the word at a [MASK] position; put [MASK] "
                             "where the word to explain goes (e.g. 'the cat [MASK] the mouse .')")
        if position is None:
            position = masks[0]
        elif ids[position] != mask_id:
            raise InputError(f"position {position} holds {tokens[position]!r}, not [MASK]: an MLM target is a "
                             f"[MASK] position (this text's: {', '.join(map(str, masks))})")
        if label is None:
            index = int(out.prediction_logits[0, position].argmax())
        else:
            index = self._word_id(label)
        word = self.tok.convert_ids_to_tokens([index])[0]
        return Goal("word", index, position, word, f"word {word!r} at [MASK] position {position}")

    def _pair_goal(self, pair: str, label: str | None, position: int | None, out: Any) -> Goal:
        if position is not None:
            raise InputError(f"{pair.upper()} labels the whole pair: give the label without @{position}")
        names = PAIR_LABELS[pair]
        logits = out.seq_relationship_logits  # NSP's, or SOP's (an ALBERT output's sop_logits is the same)
        index = int(logits[0].argmax()) if label is None else _class_index(label, names, pair.upper() + " label",
                                                                           pair.upper() + " head")
        return Goal(pair, index, None, names[index], f"{pair.upper()} {names[index]!r}")

    def _names(self, n: int) -> list[str]:
        id2label = getattr(self.config, "id2label", None) or {}
        return [str(id2label.get(i, i)) for i in range(n)]

    def _special_tokens(self) -> set[str]:
        return set(getattr(self.tok, "specials", {}).values())

    def _word_id(self, word: str) -> int:
        vocab = self.tok.vocab
        for candidate in (word, word.lower() if getattr(self.tok, "do_lower_case", False) else word):
            if candidate in vocab:
                return vocab[candidate]
        pieces = self.tok.tokenize(word)
        hint = f" (it is {len(pieces)} pieces: {' '.join(pieces)})" if len(pieces) > 1 else ""
        raise InputError(f"word {word!r} is not in the model's vocabulary{hint}: an MLM target is one word piece")


def _match(name: str, names: Sequence[str]) -> int | None:
    """The index of ``name`` among ``names``: exact, else the one case-insensitive match."""
    if name in names:
        return list(names).index(name)
    folded = [i for i, n in enumerate(names) if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _class_index(name: str, names: Sequence[str], what: str, owner: str) -> int:
    found = _match(name, names)
    if found is not None:
        return found
    listed = ", ".join(names) if len(names) <= 20 else ", ".join(names[:20]) + f", … ({len(names)} in all)"
    if re.fullmatch(r"[0-9]+", name):
        if int(name) < len(names):
            return int(name)
        raise InputError(f"{what} index {name} is out of range: this {owner} has {len(names)} {what}s "
                         f"(0..{len(names) - 1}: {listed})")
    raise InputError(f"unknown {what} {name!r}: this {owner}'s {what}s are {listed} "
                     f"(or their indices 0..{len(names) - 1})")


__all__ = ["Target", "Goal", "Targets", "PAIR_LABELS", "HEAD_TARGETS", "explainable_heads", "pair_head"]
