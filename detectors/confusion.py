"""Binary classification metrics from confusion counts (exact, mergeable).

Example:
    >>> m = binary_counts_metrics(tp=40, fp=10, tn=45, fn=5)
    >>> round(m["accuracy"][0], 3), m["accuracy"][1], round(m["f1"][0], 3)
    (0.85, 100, 0.842)
"""

from __future__ import annotations


def binary_counts_metrics(*, tp: int, fp: int, tn: int, fn: int) -> dict[str, tuple[float, int]]:
    """Metric name → (value, support). Metrics with an empty denominator are left out."""
    labelled = tp + fp + tn + fn
    out: dict[str, tuple[float, int]] = {
        "tp": (float(tp), labelled),
        "fp": (float(fp), labelled),
        "tn": (float(tn), labelled),
        "fn": (float(fn), labelled),
    }
    if labelled:
        out["accuracy"] = ((tp + tn) / labelled, labelled)
        out["positive_rate"] = ((tp + fp) / labelled, labelled)
    if tp + fp:
        out["precision"] = (tp / (tp + fp), tp + fp)
    if tp + fn:
        out["recall"] = (tp / (tp + fn), tp + fn)
    if 2 * tp + fp + fn:
        out["f1"] = (2 * tp / (2 * tp + fp + fn), labelled)
    return out
