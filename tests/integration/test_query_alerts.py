"""``query.alerts()``: each alert's decision time and evidence time, and the time units the module documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from watchkeeper import query
from watchkeeper.alerts.model import Alert, alert_id_for
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def st(store: tuple[str, int]) -> Iterator[Store]:
    host, port = store
    s = Store(host=host, port=port, database="wkquery")
    s.migrate(Retention())
    yield s
    s.close()


def test_alerts_carry_the_decision_time_and_the_evidence_time(st: Store) -> None:
    """`query.alerts()` had the view's changed_at only: no `ts` (decision time), no `evidence_ts`."""
    t = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    aid = alert_id_for("query-times", "v1", "drift", "features")
    for state, decided, evidence in (("firing", 15, 5), ("resolved", 45, 40)):
        a = Alert(alert_id=aid, model="query-times", version="v1", kind="drift", severity="warning", state=state,
                  summary=state, evidence={"subject": "features"}, ts=t + timedelta(minutes=decided),
                  evidence_ts=t + timedelta(minutes=evidence), fired_at=t + timedelta(minutes=15))  # fmt: skip
        st.insert("alerts", {c: [v] for c, v in a.to_row().items()})
    df = query.alerts("query-times", store=st)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["state"] == "resolved"
    assert row["ts"].to_pydatetime() == t + timedelta(minutes=45) == row["changed_at"].to_pydatetime()
    assert row["evidence_ts"].to_pydatetime() == t + timedelta(minutes=40)
    assert row["fired_at"].to_pydatetime() == t + timedelta(minutes=15)
    assert query.alerts("query-times", state="firing", store=st).empty
    assert list(query.alerts("query-times", state="resolved", store=st)["alert_id"]) == [aid]


def test_times_have_the_units_the_module_documents(st: Store) -> None:
    t = datetime(2026, 3, 4, 13, 0, tzinfo=UTC)
    a = Alert(alert_id=alert_id_for("query-units", "v1", "drift", "features"), model="query-units", version="v1",
              kind="drift", severity="warning", state="firing", summary="s", evidence={}, ts=t, fired_at=t)  # fmt: skip
    st.insert("alerts", {c: [v] for c, v in a.to_row().items()})
    df = query.alerts("query-units", store=st)
    assert {str(df[c].dtype) for c in ("ts", "evidence_ts", "changed_at")} == {"datetime64[ms, UTC]"}
    assert "``datetime64[ms, UTC]``" in (query.__doc__ or "") and "datetime64[ns" not in (query.__doc__ or "")
