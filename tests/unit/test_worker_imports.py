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
        "from watchkeeper.streams.app import autodiscover\n"
        "autodiscover()\n"
        "import watchkeeper.detectors\n"
        "watchkeeper.detectors.build('watchkeeper_default')\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'river.drift') if m in sys.modules))\n"
    )
    assert _run(code, tmp_path) == "['river.drift']"


def test_river_drift_datasets_still_load_on_first_use(tmp_path: Path) -> None:
    code = (
        "import watchkeeper.detectors, river.drift\n"
        "from river.drift.datasets import AirlinePassengers\n"
        "print(river.drift.datasets.AirlinePassengers is AirlinePassengers, len(list(AirlinePassengers())))\n"
    )
    assert _run(code, tmp_path) == "True 468"  # the dataset, read from river's package


def test_decoding_and_writing_a_batch_in_the_worker_never_imports_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas to check its inputs when it builds a record batch (~45 MB); the worker blocks it."""
    code = (
        "import sys, time\n"
        "from watchkeeper.lean import without_pandas\n"
        "assert without_pandas()\n"
        "import orjson\n"
        "from watchkeeper.sinks.writer import _arrow_stream\n"
        "from watchkeeper.settings import load_settings\n"
        "from watchkeeper.streams.events import Prediction\n"
        "from watchkeeper.streams.ingest import SourceMessage\n"
        "from watchkeeper.streams.service import Worker\n"
        "event = {'model': 'm', 'prediction': 0.9, 'ts': time.time(), 'features': {'x': 1.5, 'c': 'red'},\n"
        "         'segments': {'region': 'eu'}, 'scores': {'yes': 0.9, 'no': 0.1}, 'latency_ms': None}\n"
        "values = [orjson.dumps({**event, 'prediction_id': f'p{i}'}) for i in range(3)] + [b'{bad']\n"
        "messages = [SourceMessage('predictions', 0, i, v, time.time()) for i, v in enumerate(values)]\n"
        "[(_, batch)] = Worker(load_settings()).build_batches(messages, Prediction)\n"
        "table = batch.tables()['predictions']\n"
        "body = b''.join(_arrow_stream(table))\n"
        "try:\n"
        "    import pandas\n"
        "except ModuleNotFoundError as exc:\n"
        "    refused = 'in the worker' in str(exc)\n"
        "print(table.num_rows, len(batch.dead_letters['ts']), len(body) > 0, 'pandas' in sys.modules, refused)\n"
    )
    assert _run(code, tmp_path) == "3 1 True False True"


def test_without_pandas_changes_nothing_once_pandas_is_imported(tmp_path: Path) -> None:
    """No finder is added: the process's imports stay exactly as they were."""
    finders = _run("import pandas, sys\nprint(len(sys.meta_path))\n", tmp_path)
    code = (
        "import pandas, sys\nfrom watchkeeper.lean import without_pandas\n"
        "print(without_pandas(), len(sys.meta_path))\n"
    )
    assert _run(code, tmp_path) == f"False {finders}"


def test_faust_monitor_sensor_is_registered_only_with_the_faust_sensor_setting(tmp_path: Path) -> None:
    """Faust's in-memory Monitor costs every message a few µs and nothing reads it; the Prometheus one is opt-in."""
    code = (
        "from watchkeeper.streams.app import autodiscover\n"
        "app = autodiscover()\n"
        "app.on_init_dependencies()\n"
        "print(app.monitor in set(app.sensors), len(list(app.sensors)))\n"
    )
    assert _run(code, tmp_path) == "False 0"
    opt_in = "import os\nos.environ['WATCHKEEPER_FAUST_SENSOR'] = 'true'\n"
    assert _run(opt_in + code, tmp_path) == "True 1"


def test_the_worker_runs_its_drift_tests_without_loading_scipy_stats(tmp_path: Path) -> None:
    """river imports scipy.stats with any drift detector (~45 MB with scipy.optimize); the worker defers it."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from watchkeeper.lean import on_first_use\n"
        "assert on_first_use('scipy.stats')\n"
        "from watchkeeper.streams.app import autodiscover\n"
        "autodiscover()\n"
        "import watchkeeper.detectors\n"
        "from watchkeeper.detectors import NumericBinning, drift_report\n"
        "watchkeeper.detectors.build('watchkeeper_default').update(1.0)\n"
        "watchkeeper.detectors.build('covariate_shift')\n"
        "rng = np.random.default_rng(0)\n"
        "ref, cur = rng.normal(size=2000), rng.normal(1.0, 1, 1000)\n"
        "b = NumericBinning.from_reference(ref)\n"
        "cats = watchkeeper.detectors.CategoricalBinning.from_reference(['a', 'b'] * 50)\n"
        "report = drift_report({'x': b.counts(ref), 'c': cats.counts(['a'] * 60)},\n"
        "                      {'x': b.counts(cur), 'c': cats.counts(['a', 'b'] * 30)},\n"
        "                      {'x': 'numeric', 'c': 'categorical'})\n"
        "print(sorted((r.feature, bool(r.drifted)) for r in report), 'scipy.stats._stats_py' in sys.modules)\n"
        "from scipy import stats\n"
        "from river.drift import KSWIN\n"
        "k = KSWIN(seed=1)\n"
        "for x in range(100):\n"
        "    k.update(float(x % 7))\n"
        "print(round(stats.ks_2samp([1, 2, 3], [4, 5, 6]).pvalue, 3), 'scipy.stats._stats_py' in sys.modules)\n"
    )
    assert _run(code, tmp_path).splitlines() == ["[('c', True), ('x', True)] False", "0.1 True"]


def test_on_first_use_changes_nothing_once_the_module_is_imported(tmp_path: Path) -> None:
    code = (
        "import scipy.stats, sys\n"
        "from watchkeeper.lean import on_first_use\n"
        "print(on_first_use('scipy.stats'), sys.modules['scipy.stats'] is scipy.stats,\n"
        "      on_first_use('no_such_mod'), on_first_use('no_such_pkg.mod'))\n"
    )
    assert _run(code, tmp_path) == "False True False False"


def test_the_worker_takes_arrow_memory_from_the_system_allocator(tmp_path: Path) -> None:
    """mimalloc kept each thread's freed Arrow buffers (~10 MB of the worker's peak); the worker command
    switches Arrow to the system allocator and caps malloc's arenas before it starts (stopped here at
    its first step), and fixes malloc's mmap threshold."""
    code = (
        "import pyarrow as pa\n"
        "before = pa.default_memory_pool().backend_name\n"
        "import watchkeeper.lean as lean\n"
        "capped = []\n"
        "lean.cap_malloc_arenas = lambda: capped.append('arenas') or True\n"
        "lean.fix_mmap_threshold = lambda: capped.append('mmap') or True\n"
        "import watchkeeper.embedded as embedded\n"
        "def stop(settings):\n"
        "    raise SystemExit(7)\n"
        "embedded.ensure_broker = stop\n"
        "from click.testing import CliRunner\n"
        "from watchkeeper.cli import main\n"
        "result = CliRunner().invoke(main, ['worker'])\n"
        "print(before != 'system', result.exit_code, pa.default_memory_pool().backend_name, capped)\n"
    )
    assert _run(code, tmp_path) == "True 7 system ['arenas', 'mmap']"


def test_malloc_arenas_are_capped_unless_the_operator_chose(tmp_path: Path) -> None:
    code = "from watchkeeper.lean import cap_malloc_arenas\nprint(cap_malloc_arenas())\n"
    assert _run(code, tmp_path) == "True"  # glibc here
    assert _run("import os\nos.environ['MALLOC_ARENA_MAX'] = '4'\n" + code, tmp_path) == "False"


def test_the_mmap_threshold_is_fixed_unless_the_operator_chose(tmp_path: Path) -> None:
    code = "from watchkeeper.lean import fix_mmap_threshold\nprint(fix_mmap_threshold())\n"
    assert _run(code, tmp_path) == "True"  # glibc here
    assert _run("import os\nos.environ['MALLOC_MMAP_THRESHOLD_'] = '65536'\n" + code, tmp_path) == "False"


def test_release_free_memory_hands_freed_heap_memory_back(tmp_path: Path) -> None:
    """Freed blocks below a live one stay in the heap (glibc trims only its top) until malloc_trim."""
    code = (
        "from watchkeeper.streams.agents.model_stage import release_free_memory\n"
        "def anon():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('RssAnon'))\n"
        "blocks = [bytearray(4000) for _ in range(25_000)]\n"  # ~100 MB of malloc'd blocks
        "last = bytearray(4000)\n"  # keeps the heap's top in use
        "del blocks\n"
        "before = anon()\n"
        "released = release_free_memory()\n"
        "print(released, (before - anon()) // 1024 > 50)\n"
    )
    assert _run(code, tmp_path) == "True True"
