"""Metrics on cases with known answers: classification, conlleval entities, official SQuAD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glassbert.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    entity_scores,
    get_entities,
    macro_f1,
    normalize_answer,
    plot_confusion,
    squad_evaluate,
    squad_exact_match,
    squad_f1,
    squad_gold,
)
from glassbert.synthetic import make_qa

# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------

Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2, 0]


def test_accuracy_and_confusion_matrix() -> None:
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.7)
    matrix = confusion_matrix(Y_TRUE, Y_PRED)
    assert matrix.tolist() == [[3, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert confusion_matrix([0, 1], [1, 1], num_labels=4).shape == (4, 4)
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix([0, 5], [0, 1], num_labels=3)
    with pytest.raises(ValueError, match="3 items but y_pred has 2"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


def test_per_class_scores_by_hand() -> None:
    report = classification_report(np.array(Y_TRUE), np.array(Y_PRED), label_names=["a", "b", "c"])
    # class 0: tp 3, predicted 4, gold 4; class 1: tp 1, predicted 2, gold 2; class 2: tp 3, predicted 4, gold 4
    np.testing.assert_allclose(report.precision, [3 / 4, 1 / 2, 3 / 4])
    np.testing.assert_allclose(report.recall, [3 / 4, 1 / 2, 3 / 4])
    np.testing.assert_allclose(report.f1, [3 / 4, 1 / 2, 3 / 4])
    assert report.support.tolist() == [4, 2, 4]
    assert report.macro_f1 == pytest.approx(2 / 3)
    assert report.accuracy == pytest.approx(0.7)
    summary = report.to_dict()
    assert summary["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_macro_f1_skips_absent_classes_and_handles_zero_division() -> None:
    # class 1 is never predicted: precision 0 by convention, F1 0
    assert macro_f1([0, 1, 0, 0], [0, 0, 0, 0]) == pytest.approx((2 * 0.75 / 1.75 + 0) / 2)
    # a class with neither gold nor predicted items does not count
    assert macro_f1([0, 2], [0, 2], num_labels=5) == pytest.approx(1.0)


def test_plot_confusion_writes_png(tmp_path: Path) -> None:
    matrix = confusion_matrix(Y_TRUE, Y_PRED)
    path = plot_confusion(matrix, ["great", "other", "a much longer label"], tmp_path / "plots" / "cm.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="2 labels for a 3x3 matrix"):
        plot_confusion(matrix, ["a", "b"], tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Entities (conlleval / seqeval default mode)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "entities"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["I-PER", "I-PER", "O"], [("PER", 0, 2)]),  # I- without B- starts an entity
        (["O", "I-PER", "B-PER"], [("PER", 1, 2), ("PER", 2, 3)]),
        (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # type change splits
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-ORG", "I-ORG", "I-ORG"], [("ORG", 0, 3)]),
        (["S-LOC", "B-ORG", "E-ORG", "O"], [("LOC", 0, 1), ("ORG", 1, 3)]),  # IOBES works too
        (["O", "O"], []),
    ],
)
def test_get_entities_conlleval_rules(tags: list[str], entities: list[tuple[str, int, int]]) -> None:
    assert get_entities(tags) == entities


def test_entity_scores_seqeval_documentation_case() -> None:
    # the example from seqeval's README: MISC boundary wrong, PER right -> P = R = F1 = 0.5
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    scores = entity_scores(y_true, y_pred)
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    assert scores.per_type["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores.per_type["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_entity_scores_counts() -> None:
    y_true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "I-ORG"]]  # LOC missed, wrong ORG, right ORG via I-
    scores = entity_scores(y_true, y_pred)
    assert (scores.num_gold, scores.num_pred, scores.num_correct) == (3, 3, 2)
    assert scores.f1 == pytest.approx(2 / 3)
    assert entity_scores([["O"]], [["O"]]).f1 == 0.0
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="'PER' is neither"):
        get_entities(["PER"])


# ---------------------------------------------------------------------------------------------
# SQuAD v1.1 (official evaluate-v1.1.py behaviour)
# ---------------------------------------------------------------------------------------------


def test_normalize_answer_like_the_official_script() -> None:
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear & the plum.") == "apple pear plum"
    assert normalize_answer("Theater") == "theater"  # articles only as whole words
    assert normalize_answer("A-B") == "ab"  # punctuation is removed, not replaced by a space
    assert normalize_answer("  ") == ""


def test_squad_scores_known_cases() -> None:
    assert squad_exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert squad_f1("Denver Broncos", "Denver Broncos") == 1.0
    # pred {carolina, panthers, team} vs gold {panthers}: P 1/3, R 1 -> F1 0.5
    assert squad_f1("Carolina Panthers team", "Panthers") == pytest.approx(0.5)
    assert squad_f1("in 1990s", "the 1990s decade") == pytest.approx(0.5)
    assert squad_f1("the", "a") == 0.0  # both normalize to nothing
    assert squad_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # Counter intersection


def test_squad_evaluate_max_over_gold_and_unanswered() -> None:
    gold = {
        "q1": ["Denver Broncos", "The Denver Broncos"],
        "q2": ["Santa Clara, California", "Levi's Stadium"],
        "q3": ["February 7, 2016"],
        "q4": ["gold"],
    }
    predictions = {"q1": "Denver Broncos", "q2": "Levi's Stadium in Santa Clara", "q3": "7 February"}
    result = squad_evaluate(predictions, gold)
    # q2: vs "Santa Clara, California" -> common {santa, clara}: P 2/5, R 2/3 -> 0.5; vs "Levi's Stadium" ->
    # P 2/5, R 1 -> 4/7; max 4/7. q3: common {7, february}: P 1, R 2/3 -> 0.8. q4 unanswered -> 0.
    assert result["exact_match"] == pytest.approx(100 * 1 / 4)
    assert result["f1"] == pytest.approx(100 * (1 + 4 / 7 + 0.8 + 0) / 4)
    with pytest.raises(ValueError, match="no gold answers"):
        squad_evaluate({}, {"q": []})


def test_squad_gold_from_examples() -> None:
    examples = make_qa(3, seed=0)
    gold = squad_gold(examples)
    assert list(gold) == [e.id for e in examples]
    perfect = {e.id: e.answers[0][0] for e in examples}
    assert squad_evaluate(perfect, gold) == {"exact_match": 100.0, "f1": 100.0}


def test_confusion_png_shows_row_percentages_and_the_accuracy() -> None:
    from glassbert.metrics import confusion_cells

    share, texts, accuracy = confusion_cells(np.array([[50, 3, 2], [10, 20, 0], [0, 0, 0]]))
    assert texts[0][0] == "50\n90.9%" and texts[1][0] == "10\n33.3%" and texts[2][2] == "0\n0.0%"
    np.testing.assert_allclose(share.sum(axis=1), [1, 1, 0])  # an empty gold row stays 0, not NaN
    assert accuracy == "accuracy 82.4% (70/85)"
