"""Benchmark results that can be checked: targets met or missed, and a committed file per benchmark.

Every benchmark ends the same way::

    targets = [Target("envelope_vs_decode_ceiling", ">=", 0.5), ...]
    verdicts = check(results, targets)          # prints met / MISSED per target
    write("bench", results, verdicts)           # bench/results/bench.json, with commit and machine
    return 0 if all(v.met for v in verdicts) else 1

``bench/results/<name>.json`` is committed: the README's performance figures are
those files' figures, and ``tests/unit/test_bench_results.py`` fails when a
figure in a README table marked ``<!-- results: bench/results/<name>.json -->``
is not in the file it names. Targets stay out of the test suite (these machines
are noisy): a benchmark's exit status is where a miss shows.
"""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = RESULTS_DIR.parents[1]


@dataclass(frozen=True)
class Target:
    """A bound a measure must meet: ``value <op> bound`` (``op`` is ``>=`` or ``<=``).

    >>> Target("rss_mb", "<=", 260).met(248.0), Target("ratio", ">=", 0.5).met(0.42)
    (True, False)
    """

    measure: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"op must be >= or <=, not {self.op!r}")

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound


@dataclass(frozen=True)
class Verdict:
    measure: str
    value: float
    op: str
    bound: float
    met: bool


def check(results: Mapping[str, Any], targets: Iterable[Target], *, echo: bool = True) -> list[Verdict]:
    """Each target's verdict on ``results`` (a missing measure is missed); printed unless ``echo`` is false."""
    verdicts = []
    for t in targets:
        value = results.get(t.measure)
        ok = isinstance(value, int | float) and t.met(float(value))
        verdicts.append(Verdict(t.measure, float(value) if isinstance(value, int | float) else float("nan"),
                                t.op, t.bound, ok))  # fmt: skip
    if echo:
        width = max((len(v.measure) for v in verdicts), default=10) + 2
        print(f"\n{'target':<{width}}{'value':>14}  bound")
        for v in verdicts:
            print(f"{v.measure:<{width}}{v.value:>14.3f}  {v.op} {v.bound:g}  {'met' if v.met else 'MISSED'}")
        missed = [v.measure for v in verdicts if not v.met]
        print("all targets met" if not missed else f"missed: {', '.join(missed)}")
    return verdicts


def commit() -> dict[str, Any]:
    """The commit measured, and whether the tree had uncommitted changes to tracked files."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    return {"sha": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine() -> dict[str, Any]:
    """What the numbers were measured on (a figure from another machine is another figure)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_1m_at_end": round(load, 2),
    }


def write(name: str, results: Mapping[str, Any], verdicts: Iterable[Verdict] = (), **extra: Any) -> Path:
    """Write ``bench/results/<name>.json``: the results, the target verdicts, the commit and the machine."""
    RESULTS_DIR.mkdir(exist_ok=True)
    doc = {
        "bench": name,
        "commit": commit(),
        "machine": machine(),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "results": dict(results),
        "targets": [asdict(v) for v in verdicts],
        **extra,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    return path


def load(name: str) -> dict[str, Any]:
    """A committed results file (``bench/results/<name>.json``)."""
    return dict(orjson.loads((RESULTS_DIR / f"{name}.json").read_bytes()))


def numbers(doc: Any) -> list[float]:
    """Every number in a results document, at any depth (what a README figure may quote)."""
    if isinstance(doc, bool):
        return []
    if isinstance(doc, int | float):
        return [float(doc)]
    if isinstance(doc, Mapping):
        return [x for v in doc.values() for x in numbers(v)]
    if isinstance(doc, list | tuple):
        return [x for v in doc for x in numbers(v)]
    return []


def quotes(figure: str, values: Iterable[float]) -> bool:
    """Whether a README figure (as written: ``130,483``, ``0.55``, ``246``, ``2.2``) is one of ``values``
    at the figure's precision (``130k`` = thousands, rounded).

    >>> quotes("0.55", [0.5512]), quotes("130,483", [130483.4]), quotes("130k", [130483.4]), quotes("0.56", [0.5512])
    (True, True, True, False)
    """
    text = figure.replace(",", "")
    scale = 1.0
    if text.endswith("k"):
        text, scale = text[:-1], 1000.0
    decimals = len(text.split(".")[1]) if "." in text else 0
    shown = float(text)
    return any(round(v / scale, decimals) == shown for v in values)
