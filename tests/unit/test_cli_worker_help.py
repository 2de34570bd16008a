"""`watchkeeper worker --help` shows the worker's web defaults, from the settings, not Faust's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _help(tmp_path: Path, **env: str) -> str:
    # A process of its own: Faust's command line reads sys.argv and the environment at start.
    out = subprocess.run([sys.executable, "-m", "watchkeeper.cli", "worker", "--help"], cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return re.sub(r"\s+", " ", out.stdout)


def test_worker_help_shows_the_settings_web_port_and_bind_address(tmp_path: Path) -> None:
    paths = {"WATCHKEEPER_STORE_PATH": str(tmp_path / "store"), "WATCHKEEPER_DATA_DIR": str(tmp_path / "data")}
    text = _help(tmp_path, WATCHKEEPER_WEB_PORT="7077", WATCHKEEPER_WEB_HOST="127.0.0.2", **paths)
    assert "--web-port RANGE[1-65535] Port to run web server on (default: 7077, WATCHKEEPER_WEB_PORT)" in text
    assert "--web-bind TEXT Address the web server binds (default: 127.0.0.2, WATCHKEEPER_WEB_HOST)" in text
    assert "6066" not in text and "0.0.0.0" not in text
    assert not (tmp_path / "store").exists() and not (tmp_path / "data").exists()  # help starts nothing


def test_worker_help_shows_the_default_settings(tmp_path: Path) -> None:
    text = _help(tmp_path, WATCHKEEPER_STORE_PATH=str(tmp_path / "store"), WATCHKEEPER_DATA_DIR=str(tmp_path / "data"))
    assert "(default: 6066, WATCHKEEPER_WEB_PORT)" in text and "(default: 127.0.0.1, WATCHKEEPER_WEB_HOST)" in text
    assert "0.0.0.0" not in text
