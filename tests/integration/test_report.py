"""The static report, rendered from a store filled by a real stream run, opened in headless Chromium.

Chromium (Debian package ``chromium``) is driven over the Chrome DevTools
Protocol with aiohttp's websocket client (aiohttp comes with faust-streaming):
each page is loaded, every console message, uncaught exception and log entry of
level error is collected, and a script inspects every panel — its chart must
have a size and marks, its table rows, its stat a value. Panels whose data the
stream does not write yet (``PENDING_DATA`` of test_panels.py) may say "No data".
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_panels import PENDING_DATA
from tests.stack import free_port
from watchkeeper.dashboards.panels import ALERTS, FLEET, MODEL, PIPELINE
from watchkeeper.dashboards.report import render_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

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
