"""The built-in demo scenario: a fleet of binary classifiers, one of which drifts.

Deterministic for a seed. Each model serves one prediction per ``step`` seconds
of event time; outcomes follow 1 to 5 minutes later for most predictions. The
drifting model sees a mean shift in one feature (covariate drift) and a change
of the feature-label relation (concept drift) from ``drift_at`` on, so its
accuracy falls. A few malformed lines are mixed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

FEATURES = ("amount", "age_days", "velocity", "score_ext", "sessions")
REGIONS = ("eu", "us", "apac")
CHANNELS = ("web", "app", "store")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weights: tuple[float, ...]
    drift: bool = False
    owner: str = "ml-team"


@dataclass
class Scenario:
    start: float
    minutes: int = 120
    step: float = 1.0
    seed: int = 7
    label_rate: float = 0.9
    models: tuple[ModelSpec, ...] = (
        ModelSpec("demo.fraud", (1.6, -0.8, 1.2, 0.6, 0.0), owner="payments-ml"),
        ModelSpec("demo.churn", (1.2, 0.9, -1.4, 0.5, 0.8), drift=True, owner="growth-ml"),
        ModelSpec("demo.credit", (0.9, 1.1, 0.4, -1.3, 0.6), owner="risk-ml"),
        ModelSpec("demo.spam", (2.0, 0.3, -0.6, 0.9, -0.4), owner="trust-ml"),
    )
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def drift_at(self) -> float:
        return self.start + self.minutes * 60 / 2

    def events(self) -> Iterator[dict[str, Any]]:
        """Prediction and outcome records in publish order (outcomes after their predictions)."""
        rng = np.random.default_rng(self.seed)
        n = int(self.minutes * 60 / self.step)
        per_model = []
        for spec in self.models:
            per_model.append(self._model_events(spec, n, rng))
        records = [r for recs in per_model for r in recs]
        # Publish in event-time order, as a live stream would arrive.
        records.sort(key=lambda r: r["ts"])
        yield from records

    def _model_events(self, spec: ModelSpec, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        ts = self.start + np.arange(n) * self.step + rng.uniform(0, self.step, n)
        x = rng.normal(size=(n, len(FEATURES)))
        w = np.array(spec.weights)
        drifted = ts >= self.drift_at if spec.drift else np.zeros(n, dtype=bool)
        x[drifted, 2] += 1.0  # covariate shift in "velocity"
        logit = x @ w
        true_logit = logit.copy()
        # Concept drift: the world's response to two features changes sign.
        true_logit[drifted] = x[drifted] @ (w * np.array([1.0, -1.0, -1.0, 1.0, 1.0]))
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-true_logit))).astype(int)
        score = 1 / (1 + np.exp(-(logit + rng.normal(scale=0.3, size=n))))
        baseline = 1 / (1 + np.exp(-1.5 * x[:, 0]))
        latency = rng.lognormal(mean=3.0, sigma=0.4, size=n)
        fallback = rng.uniform(size=n) < 0.01
        labelled = rng.uniform(size=n) < self.label_rate
        delay = rng.uniform(60, 300, n)
        region = rng.choice(REGIONS, n)
        channel = rng.choice(CHANNELS, n)
        out: list[dict[str, Any]] = []
        pre = post = 0
        pre_ok = post_ok = 0
        for i in range(n):
            pid = f"{spec.name}-{i:07d}"
            feats: dict[str, Any] = {f: round(float(x[i, j]), 4) for j, f in enumerate(FEATURES)}
            feats["channel"] = str(channel[i])
            out.append(
                {
                    "type": "prediction",
                    "prediction_id": pid,
                    "model": spec.name,
                    "version": "v1",
                    "ts": round(float(ts[i]), 3),
                    "features": feats,
                    "prediction": round(float(score[i]), 5),
                    "latency_ms": round(float(latency[i]), 2),
                    "fallback": bool(fallback[i]),
                    "segments": {"region": str(region[i])},
                    "baseline": round(float(baseline[i]), 5),
                }
            )
            if labelled[i]:
                out.append(
                    {
                        "type": "outcome",
                        "prediction_id": pid,
                        "model": spec.name,
                        "outcome": int(y[i]),
                        "ts": round(float(ts[i] + delay[i]), 3),
                    }
                )
                correct = int(round(float(score[i]), 5) >= 0.5) == y[i]
                if ts[i] >= self.drift_at:
                    post += 1
                    post_ok += int(correct)
                else:
                    pre += 1
                    pre_ok += int(correct)
        self.expected[spec.name] = {
            "predictions": n,
            "labelled": int(labelled.sum()),
            "accuracy_before": pre_ok / pre if pre else None,
            "accuracy_after": post_ok / post if post else None,
        }
        return out


MALFORMED: tuple[bytes, ...] = (
    b'{"type": "prediction", "prediction_id": "bad-1", "model": "demo.fraud"',  # truncated JSON
    b'{"type": "prediction", "prediction_id": "bad-2", "prediction": 0.4}',  # no model
    b'{"type": "prediction", "prediction_id": "bad-3", "model": "demo fraud!", "prediction": 0.4}',  # bad name
    b'{"type": "prediction", "prediction_id": "bad-4", "model": "demo.fraud", "prediction": [1, 2]}',  # wrong type
    b'{"type": "prediction", "prediction_id": "bad-5", "model": "demo.fraud", "prediction": NaN}',  # NaN
    b'{"type": "outcome", "prediction_id": "bad-6", "model": "demo.fraud"}',  # outcome without outcome
    b"\xff\xfe not even text",
    b'["a", "list"]',
)


def write_scenario(path: Path, scenario: Scenario) -> int:
    """Write the scenario as JSONL (with the malformed lines spread through it); returns lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = 0
    bad = list(MALFORMED)
    with open(path, "wb") as fh:
        for i, rec in enumerate(scenario.events()):
            fh.write(orjson.dumps(rec) + b"\n")
            lines += 1
            if bad and i % 5000 == 2500:
                fh.write(bad.pop() + b"\n")
                lines += 1
        for line in bad:
            fh.write(line + b"\n")
            lines += 1
    return lines
