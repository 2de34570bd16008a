"""Regression metrics from mergeable sums.

With ``e = prediction - outcome`` over labelled events, SQL gives
``n = count()``, ``sum_err = sum(e)``, ``sum_abs_err = sum(abs(e))``,
``sum_sq_err = sum(e * e)``, ``sum_y = sum(y)``, ``sum_y2 = sum(y * y)``; and over
all predictions ``n_pred = count()``, ``sum_pred = sum(prediction)``.

R² uses ``SST = sum_y2 - sum_y^2 / n``, which loses precision when the outcome's
mean is huge compared with its spread (|mean| / std above ~1e6); centre the
outcome (subtract a constant from ``y`` and the prediction) if that happens.

>>> import numpy as np
>>> y = np.array([3.0, -0.5, 2.0, 7.0]); p = np.array([2.5, 0.0, 2.0, 8.0])
>>> m = RegressionSummary.from_arrays(p, y).metrics()
>>> m["mae"], m["rmse"], round(m["r2"], 4), m["bias"]
(0.5, 0.6123724356957945, 0.9486, 0.25)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._util import as_float_array, ratio
from .summary import Summary

__all__ = ["RegressionSummary"]


@dataclasses.dataclass(frozen=True, eq=False)
class RegressionSummary(Summary):
    """Sufficient statistics of a regression model over one window (see module docstring)."""

    n: int = 0
    sum_err: float = 0.0
    sum_abs_err: float = 0.0
    sum_sq_err: float = 0.0
    sum_y: float = 0.0
    sum_y2: float = 0.0
    n_pred: int = 0
    sum_pred: float = 0.0

    @classmethod
    def from_arrays(cls, predictions: Any, outcomes: Any = None) -> RegressionSummary:
        """Summarise predictions and outcomes (NaN: not labelled yet)."""
        p = as_float_array(predictions)
        y = np.full(p.shape, np.nan) if outcomes is None else as_float_array(outcomes)
        lab = ~np.isnan(y)
        e = p[lab] - y[lab]
        yl = y[lab]
        return cls(
            int(lab.sum()), float(e.sum()), float(np.abs(e).sum()), float(e @ e),
            float(yl.sum()), float(yl @ yl), int(p.size), float(p.sum()),
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """mae, mse, rmse, r2, bias (mean prediction minus outcome), mean outcome and prediction."""
        n = self.n
        mse = ratio(self.sum_sq_err, n)
        sst = self.sum_y2 - self.sum_y * self.sum_y / n if n else float("nan")
        return {
            "n": float(n),
            "label_rate": ratio(n, self.n_pred),
            "mae": ratio(self.sum_abs_err, n),
            "mse": mse,
            "rmse": math.sqrt(mse) if mse == mse else float("nan"),
            "r2": 1.0 - self.sum_sq_err / sst if n and sst > 0 else float("nan"),
            "bias": ratio(self.sum_err, n),
            "mean_outcome": ratio(self.sum_y, n),
            "mean_prediction": ratio(self.sum_pred, self.n_pred),
        }
