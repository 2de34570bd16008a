"""Every file of this repository that the README cites is committed: a reader who opens it finds it.

Generated outputs (``data/``, ``reports/``, a benchmark's fresh results) are not citations of the
repository; they are written by the commands the README shows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Cited and not committed on purpose (none: the benchmarks' results are committed under bench/results/).
PENDING: set[str] = set()


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.splitlines())


def cited_paths(readme: str, top: set[str]) -> set[str]:
    """Paths in backticks or link targets that start at a top-level entry of the repository."""
    tokens = re.findall(r"`([^`\s]+)`", readme) + re.findall(r"\]\(([^)#\s]+)", readme)
    out = set()
    for token in tokens:
        path = token.removeprefix("./").rstrip("/.,:;")
        if re.search(r"[<>*{}$]|://", path) or "/" not in path and path not in top:
            continue
        if path.split("/")[0] in top:
            out.add(path)
    return out


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_readme_cites_only_committed_files() -> None:
    tracked = _tracked()
    top = {p.split("/")[0] for p in tracked}
    missing = sorted(
        p for p in cited_paths((ROOT / "README.md").read_text(), top)
        if p not in tracked and not any(t.startswith(p + "/") for t in tracked)
    )  # fmt: skip
    assert [p for p in missing if p not in PENDING] == []
