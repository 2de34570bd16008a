"""Label-free performance estimation (CBPE) from the score histogram of all predictions.

If scores are calibrated, a prediction with score ``s`` is a positive with
probability ``s``. The expected confusion matrix at the model's threshold is
then ``E[TP] = sum(s : s >= t)``, ``E[FP] = sum(1 - s : s >= t)``, and so on;
the per-bin score sums of a ``BinarySummary`` give these exactly when the
threshold is a bin edge (every 0.01 with 100 bins). The expected ROC AUC uses
the expected positive and negative histograms ``score_sum`` and ``hist -
score_sum``.

Scores that are not calibrated can be mapped through a labelled reference
window first (``calibration=``): each bin's probability becomes the
reference's observed positive rate in that bin (shrunk towards the bin's mean
score where the reference is thin).

``cbpe_error`` compares the estimate with what the labels that did arrive
show: the estimate's error, to watch how far the estimate can be trusted.

>>> import numpy as np
>>> from watchkeeper.detectors import BinarySummary
>>> rng = np.random.default_rng(3)
>>> s = rng.beta(2, 5, 20_000)
>>> y = rng.binomial(1, s)  # calibrated scores
>>> summ = BinarySummary.from_arrays(s, y, threshold=0.4)
>>> est = cbpe_estimate(summ)
>>> round(est["est_accuracy"], 3), round(summ.metrics()["accuracy"], 3)
(0.72, 0.721)
>>> err = cbpe_error(summ)
>>> abs(err["accuracy"]) < 0.01, abs(err["roc_auc"]) < 0.01
(True, True)
"""

from __future__ import annotations

import numpy as np

from ._util import ratio
from .binary import BinarySummary, average_precision_from_hist, roc_auc_from_hist

__all__ = ["cbpe_estimate", "cbpe_error", "calibration_map"]


def calibration_map(reference: BinarySummary, prior_weight: float = 10.0) -> np.ndarray:
    """Per-bin probability of a positive, learnt from a labelled reference summary.

    ``(positives + w * mean_score) / (labelled + w)`` per bin: the observed rate,
    shrunk towards the bin's mean score with weight ``w = prior_weight``.
    """
    n = (reference.hist_pos + reference.hist_neg).astype(np.float64)
    centers = (np.arange(reference.n_bins) + 0.5) / reference.n_bins
    mean_score = np.divide(reference.score_sum_labeled, n, out=centers.copy(), where=n > 0)
    return (reference.hist_pos + prior_weight * mean_score) / (n + prior_weight)


def _threshold_split(summary: BinarySummary) -> tuple[int, float]:
    """Bin index where the threshold falls and the fraction of that bin above it."""
    pos = summary.threshold * summary.n_bins
    edge = round(pos)
    if abs(pos - edge) < 1e-9:
        return int(edge), 0.0
    b = int(np.floor(pos))
    return b, float(b + 1 - pos)  # uniform-within-bin approximation off the edges


def cbpe_estimate(summary: BinarySummary, calibration: BinarySummary | None = None) -> dict[str, float]:
    """Estimated accuracy, precision, recall, F1, ROC AUC and PR AUC without labels."""
    cnt = summary.hist.astype(np.float64)
    if calibration is not None:
        if calibration.n_bins != summary.n_bins:
            raise ValueError("calibration summary must have the same bins")
        exp_pos = cnt * calibration_map(calibration)
    else:
        exp_pos = summary.score_sum.astype(np.float64)
    exp_neg = cnt - exp_pos
    b, frac = _threshold_split(summary)
    # Predicted positive: bins above the threshold bin, plus a fraction of a split bin.
    w_above = np.zeros(summary.n_bins)
    w_above[b + (1 if frac else 0) :] = 1.0
    if frac and b < summary.n_bins:
        w_above[b] = frac
    tp, fp = float(np.sum(exp_pos * w_above)), float(np.sum(exp_neg * w_above))
    fn, tn = float(exp_pos.sum()) - tp, float(exp_neg.sum()) - fp
    n = tp + fp + fn + tn
    return {
        "est_accuracy": ratio(tp + tn, n),
        "est_precision": ratio(tp, tp + fp),
        "est_recall": ratio(tp, tp + fn),
        "est_f1": ratio(2 * tp, 2 * tp + fp + fn),
        "est_roc_auc": roc_auc_from_hist(exp_pos, exp_neg),
        "est_pr_auc": average_precision_from_hist(exp_pos, exp_neg),
        "est_prevalence": ratio(float(exp_pos.sum()), n),
    }


def cbpe_error(summary: BinarySummary, calibration: BinarySummary | None = None) -> dict[str, float]:
    """Estimate minus realised value, per metric, on the labelled events of the same window.

    The estimate is made from the labelled events' own scores so that both sides
    describe the same events.
    """
    labeled = BinarySummary(
        summary.threshold,
        summary.n_bins,
        n=summary.n_labeled,
        n_pred_pos=summary.tp + summary.fp,
        hist=summary.hist_pos + summary.hist_neg,
        score_sum=summary.score_sum_labeled,
        tp=summary.tp,
        fp=summary.fp,
        tn=summary.tn,
        fn=summary.fn,
        hist_pos=summary.hist_pos,
        hist_neg=summary.hist_neg,
        score_sum_labeled=summary.score_sum_labeled,
        sum_log_loss=summary.sum_log_loss,
        sum_brier=summary.sum_brier,
    )
    est = cbpe_estimate(labeled, calibration)
    real = labeled.metrics()
    keys = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "prevalence"}
    return {k: est[f"est_{k}"] - real[k] for k in keys}
