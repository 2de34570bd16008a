"""Multiclass metrics from a mergeable confusion matrix and a log-loss sum.

SQL: ``confusion[i, j] = countIf(outcome = classes[i] AND prediction = classes[j])``
over labelled rows (``GROUP BY outcome, prediction``), ``pred_counts[j]`` over all
predictions, ``sum_log_loss = sum(-log(greatest(scores[outcome], eps)))`` and
``n_log_loss = count()`` over labelled rows that carry ``scores``. Classes are
kept sorted by name; merging unites them.

>>> s = MulticlassSummary.from_arrays(["a", "b", "b", "c"], ["a", "b", "c", "c"])
>>> m = s.metrics()
>>> m["accuracy"], round(m["macro_f1"], 4), m["recall_c"]
(0.75, 0.7778, 0.5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._util import EPS, ratio
from .summary import Summary

__all__ = ["MulticlassSummary"]


def _missing(v: np.ndarray) -> np.ndarray:
    return np.asarray((v == None) | (v != v), dtype=bool)  # noqa: E711 - elementwise


@dataclasses.dataclass(frozen=True, eq=False)
class MulticlassSummary(Summary):
    """Confusion matrix (rows: outcome, columns: prediction) over sorted ``classes``."""

    classes: tuple[str, ...] = ()
    confusion: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0), np.int64))
    pred_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    sum_log_loss: float = 0.0
    n_log_loss: int = 0

    def _validate(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        k = len(self.classes)
        object.__setattr__(self, "confusion", np.asarray(self.confusion, dtype=np.int64).reshape(k, k))
        object.__setattr__(self, "pred_counts", np.asarray(self.pred_counts, dtype=np.int64).reshape(k))
        if list(self.classes) != sorted(set(self.classes)):
            raise ValueError("classes must be distinct and sorted")

    @classmethod
    def from_arrays(
        cls,
        predictions: Any,
        outcomes: Any = None,
        *,
        scores: Any = None,
        score_classes: Sequence[Any] | None = None,
    ) -> MulticlassSummary:
        """Summarise predicted classes, outcomes (None/NaN: unlabelled) and optional class scores.

        ``scores`` is an ``(n, k)`` array of probabilities whose columns are ``score_classes``.
        """
        pred = np.asarray(predictions, dtype=object).ravel()
        y = np.full(pred.shape, None, dtype=object) if outcomes is None else np.asarray(outcomes, dtype=object)
        y = y.ravel()
        lab = ~_missing(y)
        sc = [] if score_classes is None else [str(c) for c in score_classes]
        all_labels = np.concatenate([pred.astype(str), y[lab].astype(str), np.asarray(sc, dtype=str)])
        classes, inv = np.unique(all_labels, return_inverse=True)
        k = classes.size
        p_idx = inv[: pred.size]
        y_idx = inv[pred.size : pred.size + int(lab.sum())]
        conf = np.bincount(y_idx * k + p_idx[lab], minlength=k * k).reshape(k, k)
        sll, nll = 0.0, 0
        if scores is not None:
            s = np.asarray(scores, dtype=np.float64)
            if s.shape != (pred.size, len(sc)):
                raise ValueError("scores must be (n_events, len(score_classes))")
            col_of_class = np.full(k, -1)
            col_of_class[inv[pred.size + int(lab.sum()) :]] = np.arange(len(sc))
            cols = col_of_class[y_idx]
            rows = np.flatnonzero(lab)
            p_true = np.where(cols >= 0, s[rows, np.maximum(cols, 0)], 0.0)
            sll = float(-np.log(np.clip(p_true, EPS, 1 - EPS)).sum())
            nll = int(rows.size)
        return cls(tuple(classes.tolist()), conf, np.bincount(p_idx, minlength=k), sll, nll)

    def merge(self, other: MulticlassSummary) -> MulticlassSummary:
        """Both sets of events; classes are united."""
        classes = tuple(sorted(set(self.classes) | set(other.classes)))
        index = {c: i for i, c in enumerate(classes)}
        k = len(classes)
        conf, pc = np.zeros((k, k), np.int64), np.zeros(k, np.int64)
        for src in (self, other):
            idx = np.array([index[c] for c in src.classes], dtype=np.int64)
            conf[np.ix_(idx, idx)] += src.confusion
            pc[idx] += src.pred_counts
        return MulticlassSummary(
            classes, conf, pc, self.sum_log_loss + other.sum_log_loss, self.n_log_loss + other.n_log_loss
        )

    @property
    def n(self) -> int:
        return int(self.pred_counts.sum())

    @property
    def n_labeled(self) -> int:
        return int(self.confusion.sum())

    def metrics(self) -> dict[str, float]:
        """accuracy, macro precision/recall/F1, per-class recall (``recall_<class>``), log loss."""
        c = self.confusion
        tp = np.diag(c).astype(np.float64)
        support, predicted = c.sum(axis=1), c.sum(axis=0)
        present = (support + predicted) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, tp / support, np.nan)
            precision = np.where(predicted > 0, tp / predicted, 0.0)
            f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        rec0 = np.where(support > 0, recall, 0.0)
        out = {
            "n": float(self.n),
            "n_labeled": float(self.n_labeled),
            "label_rate": ratio(self.n_labeled, self.n),
            "accuracy": ratio(float(tp.sum()), self.n_labeled),
            "macro_precision": float(precision[present].mean()) if present.any() else float("nan"),
            "macro_recall": float(rec0[present].mean()) if present.any() else float("nan"),
            "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
            "log_loss": ratio(self.sum_log_loss, self.n_log_loss),
        }
        for cls_name, r in zip(self.classes, recall, strict=True):
            out[f"recall_{cls_name}"] = float(r)
        return out
