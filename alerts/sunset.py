"""Sunset candidates: models and versions worth retiring, with the evidence.

A dry run of the sunset rules over the whole history in the store (nothing is
written): a model idle for ``idle_days``; a version superseded by a newer one
that has carried all traffic for ``superseded_days``; a version that does worse
than its own baseline, significantly, on the same predictions (the paired test of
``SunsetRule``; ``method="run"``: ``lift`` below zero for several windows in a row).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watchkeeper.alerts.config import AlertConfig
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.detectors.timeutil import iso


@dataclass(frozen=True)
class SunsetCandidate:
    """One model (``version == ''``: the whole model) or version to consider retiring."""

    model: str
    version: str
    reasons: tuple[str, ...]  # idle, superseded, below_baseline
    since: datetime  # event time of the earliest reason
    summaries: tuple[str, ...]
    evidence: Mapping[str, Any]  # reason -> its evidence
    owner: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "reasons": list(self.reasons),
                "since": iso(self.since), "summaries": list(self.summaries), "owner": self.owner,
                "evidence": dict(self.evidence)}  # fmt: skip


def sunset_candidates(
    store: Any,
    config: AlertConfig | None = None,
    *,
    models: Sequence[str] | None = None,
    history_days: float | None = None,
) -> list[SunsetCandidate]:
    """Every model or version whose sunset rules hold at the end of the data, with evidence."""
    engine = AlertEngine(store, config, history_days=history_days, write=False)
    engine.evaluate(models)
    grouped: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for a in engine.firing(kind="sunset", models=models):
        grouped[(a.model, a.version)].append(a)
    out = []
    for (model, version), alerts in sorted(grouped.items()):
        alerts.sort(key=lambda a: (a.evidence_ts or a.ts, a.subject))
        out.append(
            SunsetCandidate(
                model=model, version=version, reasons=tuple(a.subject for a in alerts),
                since=alerts[0].evidence_ts or alerts[0].ts,
                summaries=tuple(a.summary for a in alerts), evidence={a.subject: a.evidence for a in alerts},
                owner=alerts[0].owner,
            )  # fmt: skip
        )
    return out
