"""Doctest collection: which modules pytest may import by their file path.

In a source checkout the packages are importable both as ``watchkeeper.streams...``
(how the code imports them) and by their folder name (how pytest names a module it
collects for doctests). Modules that register things with the Faust application at
import (the app, its topics and agents) would register twice under two names; they
have no doctests, so they are not collected.
"""

collect_ignore = ["streams/app.py", "streams/topics.py", "streams/agents", "bench"]


# --- The alibi marker -----------------------------------------------------------------------------
# Tests that run alibi-detect carry the `alibi` marker (and so do the doctests of its two
# detectors). Where alibi-detect is not installed (the core venv: numpy 2) they are skipped;
# `make test` runs them in .venv-alibi with --require-alibi, where a missing alibi-detect fails.

ALIBI_DOCTEST_MODULES = ("cvm_online.py", "fet_online.py")


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption(
        "--require-alibi", action="store_true", help="fail, not skip, when alibi-detect (watchkeeper[alibi]) is missing"
    )


def _alibi_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("alibi_detect") is not None


def pytest_configure(config):  # type: ignore[no-untyped-def]
    if config.getoption("--require-alibi"):
        try:
            import alibi_detect.cd  # noqa: F401  (really imported: an installed but broken alibi fails here too)
        except ImportError as exc:
            import pytest

            raise pytest.UsageError(f"--require-alibi: alibi-detect is not importable here ({exc})") from None


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    import pytest
    from _pytest.doctest import DoctestItem

    installed = _alibi_installed()
    for item in items:
        if isinstance(item, DoctestItem) and item.path.name in ALIBI_DOCTEST_MODULES:
            item.add_marker(pytest.mark.alibi)
        if not installed and item.get_closest_marker("alibi") is not None:
            item.add_marker(pytest.mark.skip(reason="alibi-detect (watchkeeper[alibi]) is not installed"))
