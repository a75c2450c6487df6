"""Metrics the service computes itself, so that every version is scored by the same code.

A submitter may send a confusion matrix, or paired targets and predictions,
instead of finished numbers. Deriving the metrics here removes one source of
disagreement between versions (a different library, a different averaging, a
different rule for dividing by zero).

Undefined values
----------------
A metric that cannot be computed is reported as ``MetricValue(None, reason)``,
never as ``0`` or ``NaN``: a zero would look like a (bad) measurement and NaN
compares false with everything, so either would let a gate draw a conclusion the
data do not support. Threshold and regression gates fail on an undefined value
and quote the reason.

The rules, for a confusion matrix ``m`` where ``m[i][j]`` counts examples of true
class ``i`` predicted as class ``j``:

* precision of a class is undefined when the class is never predicted (its
  column sums to zero); recall is undefined when the class never occurs (its
  row sums to zero).
* F1 of a class is undefined when its precision or its recall is; when both are
  defined it is ``2TP / (2TP + FP + FN)``, which is ``0`` when both are ``0``.
* macro averages (the unweighted mean over classes, as in scikit-learn) are
  undefined as soon as one class's value is undefined. This is stricter than
  scikit-learn, which counts such a class as ``0`` (``zero_division=0``) or drops
  it from the mean (``zero_division=nan``): the first invents a measurement and
  the second silently averages over fewer classes, and both can move the number
  across a gate's floor. The reason names the classes concerned, so the fix (a
  better evaluation set, or dropping the label) is plain.
* ``f1_macro`` is the mean of per-class F1 (scikit-learn's definition), not the
  F1 of macro precision and macro recall.
* micro averages: for single-label classification every error is one false
  positive and one false negative, so micro precision, recall and F1 all equal
  accuracy; they are always defined because the matrix total is positive.
* ``balanced_accuracy`` is the mean per-class recall (undefined when a class
  never occurs); for more than two classes it equals ``recall_macro``.
* accuracy is always defined.

Binary matrices (2 x 2) report accuracy, balanced accuracy, and precision,
recall and F1 of the positive class. Matrices with more classes report
accuracy, balanced accuracy and the macro and micro averages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.gates._numbers import as_count, as_real


@dataclass(frozen=True)
class MetricValue:
    """A derived metric: a finite number, or ``None`` with the reason it is undefined."""

    value: float | None
    reason: str | None = None

    def __post_init__(self) -> None:
        # Enforced here so that no caller can smuggle NaN (which compares false
        # with every threshold) or an unexplained gap into a gate report.
        if self.value is None:
            if not self.reason:
                raise ValueError("an undefined MetricValue needs a reason")
            return
        number = as_real(self.value)
        if number is None:
            raise TypeError(f"MetricValue.value must be a real number, got {self.value!r}")
        if not math.isfinite(number):
            raise ValueError(f"MetricValue.value must be finite, got {self.value!r}")
        object.__setattr__(self, "value", number)

    @property
    def defined(self) -> bool:
        """Whether the metric has a value."""
        return self.value is not None


def _undefined(reason: str) -> MetricValue:
    return MetricValue(None, reason)


def _validate_matrix(matrix: object) -> list[list[int]]:
    if isinstance(matrix, np.ndarray):
        matrix = matrix.tolist()
    if not isinstance(matrix, Sequence) or isinstance(matrix, str | bytes):
        raise ValueError("confusion matrix must be a list of rows")
    size = len(matrix)
    if size < 2:
        raise ValueError(f"confusion matrix must be at least 2 x 2, got {size} row(s)")
    rows: list[list[int]] = []
    for i, row in enumerate(matrix):
        if not isinstance(row, Sequence) or isinstance(row, str | bytes):
            raise ValueError(f"confusion matrix row {i} is not a list of counts")
        if len(row) != size:
            raise ValueError(
                f"confusion matrix must be square: row {i} has {len(row)} entries, expected {size}"
            )
        counts: list[int] = []
        for j, entry in enumerate(row):
            count = as_count(entry)
            if count is None:
                raise ValueError(
                    f"confusion matrix entry [{i}][{j}] must be an integer count, got {entry!r}"
                )
            if count < 0:
                raise ValueError(f"confusion matrix entry [{i}][{j}] is negative ({count})")
            counts.append(count)
        rows.append(counts)
    if sum(map(sum, rows)) == 0:
        raise ValueError("confusion matrix is empty: all counts are zero")
    return rows


def _class_names(size: int, labels: object) -> list[str]:
    if labels is None:
        return [f"class index {i}" for i in range(size)]
    if (
        not isinstance(labels, Sequence)
        or isinstance(labels, str | bytes)
        or not all(isinstance(label, str) for label in labels)
    ):
        raise ValueError("labels must be a list of strings")
    if len(labels) != size:
        raise ValueError(f"{len(labels)} label(s) given for a {size} x {size} confusion matrix")
    if len(set(labels)) != len(labels):
        raise ValueError("confusion matrix labels must be distinct")
    return [f"class {label!r}" for label in labels]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator


def from_confusion_matrix(
    matrix: Sequence[Sequence[int]] | npt.ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    positive_label: str | None = None,
) -> dict[str, MetricValue]:
    """Derive classification metrics from a confusion matrix (rows: truth, columns: prediction).

    For a 2 x 2 matrix the positive class is index 1 unless ``positive_label``
    names another one (which requires ``labels``). ``positive_label`` is refused
    for more than two classes, where it would mean nothing. Invalid input raises
    ``ValueError`` with a message fit for a 422 answer. See the module docstring
    for the rules on undefined values.
    """
    rows = _validate_matrix(matrix)
    size = len(rows)
    names = _class_names(size, labels)
    if positive_label is not None:
        if labels is None:
            raise ValueError("positive_label needs labels to say which index it is")
        if size != 2:
            raise ValueError("positive_label applies to binary (2 x 2) confusion matrices only")
        if positive_label not in labels:
            raise ValueError(f"positive_label {positive_label!r} is not one of the labels")

    total = sum(map(sum, rows))
    true_counts = [sum(row) for row in rows]
    predicted_counts = [sum(row[j] for row in rows) for j in range(size)]
    correct = sum(rows[i][i] for i in range(size))

    precisions: list[float | None] = [
        _ratio(rows[k][k], predicted_counts[k]) if predicted_counts[k] else None
        for k in range(size)
    ]
    recalls: list[float | None] = [
        _ratio(rows[k][k], true_counts[k]) if true_counts[k] else None for k in range(size)
    ]
    f1s: list[float | None] = [
        _ratio(2 * rows[k][k], predicted_counts[k] + true_counts[k])
        if predicted_counts[k] and true_counts[k]
        else None
        for k in range(size)
    ]

    never_occurs = [names[k] for k in range(size) if not true_counts[k]]
    never_predicted = [names[k] for k in range(size) if not predicted_counts[k]]

    metrics: dict[str, MetricValue] = {"accuracy": MetricValue(_ratio(correct, total))}
    if never_occurs:
        metrics["balanced_accuracy"] = _undefined(
            "balanced_accuracy is undefined: no true examples of " + ", ".join(never_occurs)
        )
    else:
        metrics["balanced_accuracy"] = MetricValue(_mean(recalls))

    if size == 2:
        positive = 1 if positive_label is None else list(labels or ()).index(positive_label)
        name = names[positive]
        precision, recall, f1 = precisions[positive], recalls[positive], f1s[positive]
        metrics["precision"] = (
            MetricValue(precision)
            if precision is not None
            else _undefined(f"precision is undefined: no positive predictions ({name})")
        )
        metrics["recall"] = (
            MetricValue(recall)
            if recall is not None
            else _undefined(f"recall is undefined: no positive examples ({name})")
        )
        if f1 is not None:
            metrics["f1"] = MetricValue(f1)
        else:
            missing = [
                what
                for what, value in (("precision", precision), ("recall", recall))
                if value is None
            ]
            metrics["f1"] = _undefined(
                f"f1 is undefined: {' and '.join(missing)} undefined for the positive {name}"
            )
        return metrics

    metrics["precision_macro"] = (
        MetricValue(_mean(precisions))
        if not never_predicted
        else _undefined(
            "precision_macro is undefined: never predicted " + ", ".join(never_predicted)
        )
    )
    metrics["recall_macro"] = (
        MetricValue(_mean(recalls))
        if not never_occurs
        else _undefined("recall_macro is undefined: no true examples of " + ", ".join(never_occurs))
    )
    if never_predicted or never_occurs:
        problems = []
        if never_predicted:
            problems.append("never predicted " + ", ".join(never_predicted))
        if never_occurs:
            problems.append("no true examples of " + ", ".join(never_occurs))
        metrics["f1_macro"] = _undefined("f1_macro is undefined: " + "; ".join(problems))
    else:
        metrics["f1_macro"] = MetricValue(_mean(f1s))
    micro = _ratio(correct, total)
    for key in ("precision_micro", "recall_micro", "f1_micro"):
        metrics[key] = MetricValue(micro)
    return metrics


def _mean(values: Sequence[float | None]) -> float:
    defined = [value for value in values if value is not None]
    assert len(defined) == len(values)
    return math.fsum(defined) / len(defined)


def _validate_reals(name: str, values: object) -> list[float]:
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a list of numbers")
    out: list[float] = []
    for i, value in enumerate(values):
        number = as_real(value)
        if number is None:
            raise ValueError(f"{name}[{i}] must be a number, got {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"{name}[{i}] must be finite, got {value!r}")
        out.append(number)
    return out


def from_regression(
    targets: Sequence[float] | npt.ArrayLike, predictions: Sequence[float] | npt.ArrayLike
) -> dict[str, MetricValue]:
    """Derive ``mae``, ``mse``, ``rmse`` and ``r2`` from paired targets and predictions.

    Sums use ``math.fsum`` so that the result does not depend on the order of the
    examples. ``r2`` is undefined when the targets are constant (no variance to
    explain). Invalid input (different or zero lengths, non-finite values, or
    errors too large for a float) raises ``ValueError``.
    """
    ys = _validate_reals("targets", targets)
    preds = _validate_reals("predictions", predictions)
    if len(ys) != len(preds):
        raise ValueError(f"targets and predictions differ in length ({len(ys)} and {len(preds)})")
    if not ys:
        raise ValueError("targets and predictions are empty")
    n = len(ys)
    errors = [y - p for y, p in zip(ys, preds, strict=True)]
    squared = [e * e for e in errors]
    mae = math.fsum(abs(e) for e in errors) / n
    sse = math.fsum(squared)
    mse = sse / n
    if not (math.isfinite(mae) and math.isfinite(mse)):
        raise ValueError("errors are too large to compute regression metrics in floating point")
    target_mean = math.fsum(ys) / n
    sst = math.fsum((y - target_mean) * (y - target_mean) for y in ys)
    if not math.isfinite(sst):
        raise ValueError("targets are too large to compute r2 in floating point")
    r2 = (
        MetricValue(1.0 - sse / sst)
        if sst > 0
        else _undefined("r2 is undefined: the targets are constant")
    )
    return {
        "mae": MetricValue(mae),
        "mse": MetricValue(mse),
        "rmse": MetricValue(math.sqrt(mse)),
        "r2": r2,
    }
