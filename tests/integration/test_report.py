"""The static report, rendered from a store filled by a real stream run, opened in headless Chromium.

Chromium (Debian package ``chromium``) is driven over the Chrome DevTools
Protocol with aiohttp's websocket client (aiohttp comes with faust-streaming):
each page is loaded, every console message, uncaught exception and log entry of
level error is collected, and a script inspects every panel — its chart must
have a size and marks, its table rows, its stat a value. Panels whose data the
stream does not write yet (``PENDING_DATA`` of test_panels.py) may say "No data".

Every page (the report's and the demo's ``summary.html``) is also laid out at
1400 and 800 px wide and measured as a reader sees it (``MEASURE``): no sideways
scrolling of the page or of a table, alert summaries in a column wide enough to
read them in a few lines, time axes that end where the data ends, each drift
statistic on an axis of its own, chart text no smaller than 9 px.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_panels import PENDING_DATA
from tests.stack import free_port
from watchkeeper.dashboards.panels import ALERTS, FLEET, MODEL, PIPELINE
from watchkeeper.dashboards.report import render_report

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SVG_VIZ = {"timeseries", "xychart", "barchart", "heatmap", "statetimeline"}

INSPECT = """
Array.from(document.querySelectorAll('figure.panel')).map(f => {
  const svg = f.querySelector('svg.chart');
  const box = svg ? svg.getBoundingClientRect() : null;
  const table = f.querySelector('table');
  return {
    key: f.dataset.panel, viz: f.dataset.viz, state: f.dataset.state,
    svgWidth: box ? box.width : 0, svgHeight: box ? box.height : 0,
    marks: svg ? svg.querySelectorAll('polyline, polygon, circle, rect.bar, rect.cell, rect.state').length : 0,
    tableRows: table ? table.querySelectorAll('tbody tr').length : 0,
    stat: f.querySelector('.stat') ? f.querySelector('.stat').textContent.trim() : null,
  };
})
"""


@pytest.fixture(scope="module")
def report(stream_run: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return render_report(stream_run.store, tmp_path_factory.mktemp("report"))


def test_report_has_an_index_and_a_page_per_model(report: list[Path], stream_run: Any) -> None:
    assert report[0].name == "index.html"
    assert sorted(p.name for p in report[1:]) == [f"model-{m}.html" for m in stream_run.models]
    index = report[0].read_text()
    for spec in (FLEET, ALERTS, PIPELINE):
        for panel in spec.panels():
            assert f'data-panel="{panel.key}"' in index
    for model in stream_run.models:
        assert f'href="model-{model}.html"' in index
    page = (report[0].parent / "model-demo.churn.html").read_text()
    assert all(f'data-panel="{p.key}"' in page for p in MODEL.panels())
    assert 'data-state="error"' not in index + page


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        call_id = self.next_id
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), timeout=30)
            if msg.get("id") == call_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    async def wait_for_event(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            msg = await asyncio.wait_for(self.ws.receive_json(), timeout=max(deadline - time.monotonic(), 0.1))
            self.events.append(msg)

    def problems(self) -> list[str]:
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                out.append(f"log: {p['entry'].get('text')} ({p['entry'].get('url', '')})")
        return out


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless Chromium with remote debugging; yields its HTTP endpoint."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    port = free_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = open(profile.parent / "chromium.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--remote-debugging-port={port}",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_for_devtools(endpoint, proc))
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _wait_for_devtools(endpoint: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}")
            try:
                async with http.get(f"{endpoint}/json/version") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium's DevTools endpoint did not come up")
            await asyncio.sleep(0.1)


async def _inspect(endpoint: str, pages: list[Path], shots: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{endpoint}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            dt = DevTools(ws)
            for method in ("Page.enable", "Runtime.enable", "Log.enable"):
                await dt.call(method)
            for page in pages:
                dt.events.clear()
                await dt.call("Page.navigate", url=page.resolve().as_uri())
                await dt.wait_for_event("Page.loadEventFired")
                panels = await dt.call("Runtime.evaluate", expression=INSPECT, returnByValue=True)
                shot = await dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                (shots / f"{page.stem}.png").write_bytes(base64.b64decode(shot["data"]))
                results[page.name] = {"panels": panels["result"]["value"], "problems": dt.problems()}
    return results


def test_every_chart_loads_in_chromium_without_console_errors(
    report: list[Path], chromium: str, tmp_path: Path
) -> None:
    results = asyncio.run(_inspect(chromium, report, tmp_path))
    assert set(results) == {p.name for p in report}
    for page, result in results.items():
        assert result["problems"] == [], f"{page}: {result['problems']}"
        panels = result["panels"]
        expected = FLEET, ALERTS, PIPELINE
        keys = (
            [p.key for spec in expected for p in spec.panels()]
            if page == "index.html"
            else [p.key for p in MODEL.panels()]
        )
        assert [p["key"] for p in panels] == keys, page
        for p in panels:
            where = f"{page} {p['key']}"
            assert p["state"] in ("chart", "empty"), where
            # A stable model has no alerts: its alert list may be empty.
            quiet = page != "index.html" and p["key"] == "model_alerts"
            if p["key"] not in PENDING_DATA and not quiet:
                assert p["state"] == "chart", f"{where} shows no chart: {json.dumps(p)}"
            if p["state"] != "chart":
                continue
            if p["viz"] in SVG_VIZ:
                assert p["svgWidth"] > 100 and p["svgHeight"] > 50 and p["marks"] > 0, f"{where}: {p}"
            elif p["viz"] == "table":
                assert p["tableRows"] > 0, where
            else:
                assert p["stat"] not in (None, "", "–"), where


# --------------------------------------------------------------------------- layout, as a reader sees it

WIDTHS = (1400, 800)
# Columns of free text (an alert's summary, a dead letter's example) a reader must be able to read.
TEXT_COLUMNS = ("summary", "example")
MIN_FONT_PX = 9.0
MAX_TEXT_LINES = 4
MAX_EMPTY_AXIS = 0.1  # share of a time axis with no data at either end

MEASURE = """
(() => {
  const box = e => e.getBoundingClientRect();
  const lineHeight = e => parseFloat(getComputedStyle(e).lineHeight) || 1.45 * parseFloat(getComputedStyle(e).fontSize);
  const textCells = table => {
    const heads = Array.from(table.querySelectorAll('thead th')).map(th => th.textContent.trim());
    const cols = heads.map((h, i) => [h, i]).filter(([h]) => TEXT_COLUMNS.includes(h));
    const byHead = cols.flatMap(([h, i]) =>
      Array.from(table.querySelectorAll(`tbody tr > td:nth-child(${i + 1})`)).map(td => [h, td]));
    const byAttr = Array.from(table.querySelectorAll('td[data-col]'))
      .filter(td => TEXT_COLUMNS.includes(td.dataset.col)).map(td => [td.dataset.col, td]);
    return (byAttr.length ? byAttr : byHead).map(([col, td]) => ({
      col, width: box(td).width, lines: Math.round(box(td).height / lineHeight(td)),
    }));
  };
  const chart = svg => {
    const frame = svg.querySelector('rect.frame');
    const f = frame ? box(frame) : null;
    const marks = Array.from(svg.querySelectorAll('polyline.line, rect.bar, circle')).map(box);
    const lines = Array.from(svg.querySelectorAll('polyline.line')).map(l => ({
      name: (l.querySelector('title') || {}).textContent || '', height: box(l).height,
    }));
    const fonts = Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim())
      .map(t => box(t).height).filter(h => h > 0);
    const t = name => svg.hasAttribute(name) ? parseFloat(svg.getAttribute(name)) : null;
    return {
      visible: box(svg).width > 0, t0: t('data-t0'), t1: t('data-t1'),
      frame: f && {left: f.left, right: f.right, width: f.width, height: f.height},
      marksLeft: marks.length ? Math.min(...marks.map(b => b.left)) : null,
      marksRight: marks.length ? Math.max(...marks.map(b => b.right)) : null,
      lines, minTextHeight: fonts.length ? Math.min(...fonts) : null,
    };
  };
  const panels = Array.from(document.querySelectorAll('figure.panel')).map(f => ({
    key: f.dataset.panel, viz: f.dataset.viz, state: f.dataset.state,
    tables: Array.from(f.querySelectorAll('table')).map(t => ({
      width: box(t).width, scroller: t.parentElement.clientWidth, scrollWidth: t.parentElement.scrollWidth,
      text: textCells(t),
    })),
    charts: Array.from(f.querySelectorAll('svg.chart')).map(chart).filter(c => c.visible),
  }));
  const loose = Array.from(document.querySelectorAll('table')).filter(t => !t.closest('figure.panel'))
    .map(t => ({
      width: box(t).width, scroller: t.parentElement.clientWidth, scrollWidth: t.parentElement.scrollWidth,
      text: textCells(t), rows: t.querySelectorAll('tbody tr').length,
      heads: Array.from(t.querySelectorAll('th')).map(th => th.textContent.trim()),
    }));
  return {
    viewport: window.innerWidth, pageWidth: document.documentElement.scrollWidth,
    panels, tables: loose, text: document.body.innerText,
    links: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')),
  };
})()
""".replace("TEXT_COLUMNS", json.dumps(list(TEXT_COLUMNS)))


async def measure(endpoint: str, pages: list[Path], shots: Path | None = None) -> dict[tuple[str, int], Any]:
    """``MEASURE`` of every page at every width in ``WIDTHS`` (screenshots into ``shots`` if given)."""
    out: dict[tuple[str, int], Any] = {}
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{endpoint}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            dt = DevTools(ws)
            await dt.call("Page.enable")
            for width in WIDTHS:
                await dt.call(
                    "Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False
                )
                for page in pages:
                    dt.events.clear()
                    await dt.call("Page.navigate", url=page.resolve().as_uri())
                    await dt.wait_for_event("Page.loadEventFired")
                    result = await dt.call("Runtime.evaluate", expression=MEASURE, returnByValue=True)
                    out[(page.name, width)] = result["result"]["value"]
                    if shots is not None:
                        shot = await dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                        (shots / f"{page.stem}-{width}.png").write_bytes(base64.b64decode(shot["data"]))
    return out


def layout_problems(page: str, width: int, m: dict[str, Any], windows: tuple[float, float]) -> list[str]:
    """What a reader of ``page`` at ``width`` px would trip over, one line each (empty: nothing).

    ``windows`` is the range the stored metrics windows cover (epoch seconds): a time axis may
    show where there are windows but no events of its own (alerts are sparse), never beyond the
    windows and its own data.
    """
    where = f"{page} @{width}px"
    problems = []
    if m["pageWidth"] > m["viewport"]:
        problems.append(f"{where}: the page scrolls sideways ({m['pageWidth']} px wide)")
    tables = [(p["key"], t) for p in m["panels"] for t in p["tables"]] + [("page", t) for t in m["tables"]]
    for key, t in tables:
        if t.get("scrollWidth", 0) > t.get("scroller", 0) + 1:
            problems.append(f"{where} {key}: the table scrolls sideways ({t['scrollWidth']} > {t['scroller']} px)")
        for cell in t["text"]:
            if cell["width"] < min(0.6 * t["width"], 600) or cell["lines"] > MAX_TEXT_LINES:
                problems.append(
                    f"{where} {key}: {cell['col']} squeezed into {cell['width']:.0f} px of {t['width']:.0f} "
                    f"({cell['lines']} lines)"
                )
                break
    for p in m["panels"]:
        for c in p["charts"]:
            if c["minTextHeight"] is not None and c["minTextHeight"] < MIN_FONT_PX:
                problems.append(f"{where} {p['key']}: chart text {c['minTextHeight']:.1f} px high")
            if p["viz"] != "timeseries" or not c["frame"] or c["marksRight"] is None:
                continue
            f = c["frame"]
            empty_right = (f["right"] - c["marksRight"]) / f["width"]
            empty_left = (c["marksLeft"] - f["left"]) / f["width"]
            past_end = empty_right > MAX_EMPTY_AXIS and (c["t1"] is None or c["t1"] > windows[1])
            before_start = empty_left > MAX_EMPTY_AXIS and (c["t0"] is None or c["t0"] < windows[0])
            if past_end or before_start:
                problems.append(
                    f"{where} {p['key']}: the time axis runs past the data "
                    f"({empty_left:.0%} empty on the left, {empty_right:.0%} on the right)"
                )
            if p["key"] == "model_output_drift":
                for line in c["lines"]:
                    if line["height"] < 0.3 * f["height"]:
                        problems.append(
                            f"{where} {p['key']}: {line['name']} spans {line['height']:.0f} of "
                            f"{f['height']:.0f} px: it looks flat on a shared axis"
                        )
    return problems


@pytest.fixture(scope="module")
def summary_page(stream_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's ``summary.html`` for the stream run, as ``watchkeeper demo`` writes it."""
    from watchkeeper.demo import demo_alerts, summarise, write_reports

    out = tmp_path_factory.mktemp("summary")
    summary = summarise(stream_run.store, stream_run.scenario, datetime(1970, 1, 1, tzinfo=UTC))
    summary["alerts"] = demo_alerts(stream_run.store, sorted(stream_run.scenario.expected))
    write_reports(summary, out)
    return out / "summary.html"


@pytest.fixture(scope="module")
def layout(report: list[Path], summary_page: Path, chromium: str) -> dict[tuple[str, int], Any]:
    return asyncio.run(measure(chromium, [*report, summary_page]))


def windows_range(store: Any) -> tuple[float, float]:
    """The range the stored metrics windows cover, in epoch seconds."""
    r = store.query(
        "SELECT toUnixTimestamp(min(window_start)) AS t0, toUnixTimestamp(max(window_end)) AS t1 FROM metrics"
    )
    return float(r[0]["t0"]), float(r[0]["t1"])


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_reads_without_sideways_scrolling_squeezed_text_or_empty_axes(
    layout: dict[tuple[str, int], Any], width: int, stream_run: Any
) -> None:
    windows = windows_range(stream_run.store)
    problems = [
        line for (page, w), m in sorted(layout.items()) if w == width for line in layout_problems(page, w, m, windows)
    ]
    assert problems == [], "\n".join(problems)


def test_drift_statistics_each_fill_their_own_axis(layout: dict[tuple[str, int], Any]) -> None:
    """The drifting model's prediction KS (0-0.4) is not drawn on the label chi-square's axis (0-50)."""
    for width in WIDTHS:
        panel = next(p for p in layout[("model-demo.churn.html", width)]["panels"] if p["key"] == "model_output_drift")
        names = sorted(line["name"].split(" (")[0] for c in panel["charts"] for line in c["lines"])
        assert names == ["label · chi2", "prediction · ks"], names
        assert len(panel["charts"]) == 2, "one axis per statistic"


def test_summary_page_lists_the_alerts(layout: dict[tuple[str, int], Any], stream_run: Any) -> None:
    from tests.integration.conftest import SCENARIO_ALERTS

    page = layout[("summary.html", 800)]
    alerts = next((t for t in page["tables"] if "kind" in t["heads"]), None)
    assert alerts is not None, "summary.html has no table of the alerts"
    summaries = [c for c in alerts["text"] if c["col"] == "summary"]
    assert len(summaries) >= len(SCENARIO_ALERTS), "each alert with its summary"
    assert all(c["lines"] <= MAX_TEXT_LINES for c in summaries)
    for model, kind in SCENARIO_ALERTS:
        assert model in page["text"] and kind in page["text"]
    assert "index.html" in page["links"], "the summary links to the full report"
