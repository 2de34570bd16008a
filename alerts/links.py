"""Links in alert payloads: the model dashboard at the alert's range, and the runbook (or its first steps).

Every notifier puts the same link in its payload (``dashboard_url`` in the webhook
and retrain JSON, a button in Slack, ``links``/``client_url`` in PagerDuty,
``generatorURL`` in Alertmanager), built from ``WATCHKEEPER_GRAFANA_LINK_URL`` (Grafana as
people open it; default ``WATCHKEEPER_GRAFANA_URL``). The
range shows the evidence: from ``LOOKBACK`` before the decision (or from the
firing start, for a resolution) to ``AFTER`` past it.

>>> from datetime import UTC, datetime
>>> from watchkeeper.alerts.model import Alert
>>> t = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
>>> a = Alert(alert_id="retrain-1", model="fraud v2", version="v3", kind="retrain", severity="critical",
...           state="firing", summary="s", evidence={"subject": ""}, ts=t, fired_at=t)
>>> dashboard_url(a, "https://grafana.example/")
'https://grafana.example/d/watchkeeper-model?orgId=1&var-model=fraud+v2&var-version=v3&from=1772431200000&to=1772456400000'
>>> dashboard_url(a, None) is None
True

The runbook link is ``<WATCHKEEPER_RUNBOOK_BASE_URL>#<kind>``. Its default,
``docs/runbooks.md``, is a path in the repository that nobody can open from
Slack or a pager, so where the runbook has no http(s) address the payloads carry
the runbook's first steps for the alert's kind instead (:func:`first_steps`,
the "First steps" list of each section of ``docs/runbooks.md``; a test holds the
two to the same text), and the worker says at start-up that the base is unset
(:func:`warn_if_runbook_base_unset`).

>>> steps = first_steps(a)
>>> len(steps), steps[0].endswith("`watchkeeper alerts --model 'fraud v2' --kind retrain --history --format json`.")
(3, True)
>>> first_steps(a.model_copy(update={"runbook_url": "https://rb.example/wk.md#retrain"}))
()
"""

from __future__ import annotations

import logging
import re
import shlex
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from watchkeeper.alerts.model import Alert

# The model dashboard's uid (dashboards/panels; a test checks that the two agree) and its variables.
MODEL_DASHBOARD_UID = "watchkeeper-model"
LOOKBACK = timedelta(hours=6)
AFTER = timedelta(hours=1)


def time_range(alert: Alert) -> tuple[datetime, datetime]:
    """The range a link opens: the evidence before the decision, and a little after it."""
    start = alert.ts - LOOKBACK
    since = alert.evidence.get("firing_since") if not alert.firing else None
    if isinstance(since, str):
        try:
            start = min(start, datetime.fromisoformat(since.replace("Z", "+00:00")) - LOOKBACK)
        except ValueError:
            pass  # not a time: keep the default range
    return start, alert.ts + AFTER


def dashboard_url(alert: Alert, grafana_url: str | None) -> str | None:
    """The model dashboard at the alert's model, version and time range; None without a Grafana URL."""
    if not grafana_url:
        return None
    start, end = time_range(alert)
    params: dict[str, str | int] = {"orgId": 1, "var-model": alert.model}
    if alert.version:
        params["var-version"] = alert.version
    params["from"] = int(start.timestamp() * 1000)
    params["to"] = int(end.timestamp() * 1000)
    return f"{grafana_url.rstrip('/')}/d/{MODEL_DASHBOARD_UID}?{urlencode(params)}"


# Runbooks ----------------------------------------------------------------------------------------

# The first steps of each kind's runbook, as docs/runbooks.md lists them under "First steps" (with
# {model} for the alert's model, shell-quoted, and {sql_model} as an SQL string; tests/unit/test_runbooks.py
# compares the two).
FIRST_STEPS: dict[str, tuple[str, ...]] = {
    "drift": (
        "Read the evidence: which features, and whether they were confirmed per event (`alarm`) or "
        "flagged 3 windows in a row: `watchkeeper alerts --model {model} --kind drift --history --format json`.",
        "Look for a `retrain` or `performance` alert of the same version: "
        "`watchkeeper alerts --model {model} --state firing`. Drift with accuracy holding calls for a look, "
        "not a retrain.",
        "Compare the top feature's recent values with the training reference: a burst of nulls, a unit "
        "change or a renamed category points at the producer or the feature pipeline; fix it there and "
        "silence the drift alert while the fix rolls out.",
    ),
    "performance": (
        "Read the evidence: how large the estimated drop is and how few labels there are: "
        "`watchkeeper alerts --model {model} --kind performance --history --format json`.",
        "Where labels have arrived, compare the estimate with the measured accuracy, window by window "
        "(`metrics` rows `estimated_accuracy` and `accuracy`).",
        "The estimate moves when the scores move: look for a drift alert of the model: "
        "`watchkeeper alerts --model {model} --kind drift`.",
    ),
    "retrain": (
        "Read the evidence: the drop, its reasons (performance, concept drift) and whether one group drives "
        "it: `watchkeeper alerts --model {model} --kind retrain --history --format json`.",
        "Did a new version or a change in the labels start it? Compare accuracy and label prevalence by "
        "window and version (`metrics` rows `accuracy` and `prevalence`); a sudden drop after a deploy is "
        "a case for a rollback.",
        "Look for a drift alert of the same version (`watchkeeper alerts --model {model} --state firing`): "
        "drifted inputs plus an accuracy drop is the case for a retrain.",
    ),
    "sunset": (
        "See every candidate with its reasons and evidence: "
        "`watchkeeper sunset-candidates --model {model} --format json`.",
        "Check who still serves the version, and since when (traffic by version in `metrics`, "
        "metric `predictions`).",
        "For `below_baseline`: check whether the model is consistently worse than its baseline, or only "
        "since a recent change, before retiring it.",
    ),
    "fairness": (
        "Read which gaps, between which groups, over how many events: "
        "`watchkeeper alerts --model {model} --kind fairness --history --format json`.",
        "Check the counts per group: groups with few labelled positives or negatives have wide bounds, "
        "and one window's gap may be noise.",
        "Check that labels arrive for every group alike: missing labels in one group bias its measured rates.",
    ),
    "no_data": (
        "Check that the pipeline runs (broker, store, workers, consumer lag, last window written): "
        "`watchkeeper status`.",
        "Check whether the model's events are refused: "
        '`watchkeeper sql "SELECT error, count() AS n FROM dead_letters FINAL WHERE model = {sql_model} '
        'GROUP BY error ORDER BY n DESC LIMIT 5"` (the client counts its own refusals in '
        "`stats()['rejected_reasons']`).",
        "Check whether the traffic moved to another model name (a rename, a typo, a new deployment): "
        '`watchkeeper sql "SELECT model, max(ts) AS last FROM predictions FINAL WHERE ts >= now() - INTERVAL 1 DAY '
        'GROUP BY model ORDER BY last DESC LIMIT 20"`.',
    ),
    "ops": (
        "Read which subject fired (`dead_letters`, `orphaned_outcomes`, `late_labels` or `lag`) and how it "
        "moved: `watchkeeper alerts --model {model} --kind ops --history --format json`.",
        "For dead letters, the reasons (each names the field at fault): "
        '`watchkeeper sql "SELECT error, count() AS n FROM dead_letters FINAL WHERE model = {sql_model} '
        'GROUP BY error ORDER BY n DESC LIMIT 10"`; fix the producer, then replay the fixed events.',
        "For lag, `watchkeeper status` shows the consumer lag; for orphaned outcomes or late labels, compare "
        "the ids and timing of the outcome publisher with the predictions'.",
    ),
    "challenger": (
        "Read the decision and its evidence: `watchkeeper alerts --model {model} --history --format json`.",
        "Check that the comparison is fair: each version's traffic, labels and accuracy over the same "
        "windows, overall and per segment.",
        "Act on it: promote a challenger that is better, roll back one that is worse, and end the test.",
    ),
}


def is_address(link: str | None) -> bool:
    """Whether a person can open ``link`` from a chat or a pager: an http(s) URL with a host.

    >>> is_address("https://github.com/acme/wk/blob/main/docs/runbooks.md#drift"), is_address("docs/runbooks.md")
    (True, False)
    """
    if not link:
        return False
    parts = urlsplit(link)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def runbook_link(alert: Alert) -> str | None:
    """The alert's runbook URL when it is an address one can open, else None (payloads then carry the steps)."""
    return alert.runbook_url if is_address(alert.runbook_url) else None


def first_steps(alert: Alert) -> tuple[str, ...]:
    """The first steps of the alert's runbook, for payloads whose runbook link could not be opened; else ()."""
    if is_address(alert.runbook_url):
        return ()
    model = alert.model
    # Event model names match MODEL_NAME_PATTERN (safe in SQL quotes); anything else is left for the reader.
    sql_model = f"'{model}'" if re.fullmatch(r"[A-Za-z0-9_.-]+", model) else "'<model>'"
    return tuple(step.format(model=shlex.quote(model), sql_model=sql_model) for step in FIRST_STEPS.get(alert.kind, ()))


def runbook_base_warning(base: str) -> str | None:
    """What the worker says at start-up when alerts cannot link their runbook; None when they can.

    >>> runbook_base_warning("https://github.com/acme/wk/blob/main/docs/runbooks.md") is None
    True
    """
    if is_address(base):
        return None
    return (
        f"WATCHKEEPER_RUNBOOK_BASE_URL is unset or not an http(s) URL ({base!r}): alert payloads carry each "
        "runbook's first steps instead of a link. Set it to where docs/runbooks.md is served, e.g. "
        "https://github.com/<org>/<repo>/blob/main/docs/runbooks.md"
    )


def warn_if_runbook_base_unset(base: str, logger: logging.Logger | None = None) -> bool:
    """Log :func:`runbook_base_warning` (once, at worker start-up); True when there was something to say."""
    message = runbook_base_warning(base)
    if message is not None:
        (logger or logging.getLogger("watchkeeper.alerts")).warning(message)
    return message is not None
