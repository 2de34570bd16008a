"""What a worker process imports: the stream's modules, without pandas or scikit-learn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "WATCHKEEPER_DATA_DIR": str(tmp_path / "faust"), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_the_worker_modules_leave_pandas_and_sklearn_unloaded(tmp_path: Path) -> None:
    """river.drift imports its example datasets (pandas, scikit-learn: ~140 MB); the worker never needs them."""
    code = (
        "import sys\n"
        "from streams.app import autodiscover\n"
        "autodiscover()\n"
        "import detectors\n"
        "detectors.build('watchkeeper_default')\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'river.drift') if m in sys.modules))\n"
    )
    assert _run(code, tmp_path) == "['river.drift']"


def test_river_drift_datasets_still_load_on_first_use(tmp_path: Path) -> None:
    code = (
        "import detectors, river.drift\n"
        "from river.drift.datasets import AirlinePassengers\n"
        "print(river.drift.datasets.AirlinePassengers is AirlinePassengers, len(list(AirlinePassengers())))\n"
    )
    assert _run(code, tmp_path) == "True 468"  # the dataset, read from river's package
