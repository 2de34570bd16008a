"""The worker's assembly (streams/assembly.py): settings read in main, not at import; no shared globals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from watchkeeper.settings import Settings
from watchkeeper.streams.assembly import assemble
from watchkeeper.windows.ownership import owner_partition

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_worker_reads_no_settings_and_bad_settings_fail_at_start(tmp_path: Path) -> None:
    """A misconfigured worker fails when it starts, with the settings' message, not when a module is imported."""
    code = (
        "import watchkeeper.streams.app, watchkeeper.streams.topics, watchkeeper.streams.assembly\n"
        "import watchkeeper.streams.agents.ingest, watchkeeper.streams.agents.model_stage\n"
        "print('imported')\n"
        "from watchkeeper.streams.app import autodiscover\n"
        "autodiscover()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "WATCHKEEPER_PARTITIONS": "many", "WATCHKEEPER_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.stdout.strip() == "imported"
    assert out.returncode != 0 and "partitions" in out.stderr


def test_two_assemblies_share_nothing(tmp_path: Path) -> None:
    """Each worker has its own App, topics, ownership and model-stage state: a revoke in one leaves the other."""
    a = assemble(Settings(app_id="wk-a", topic_predictions="pred-a", data_dir=tmp_path / "a"), register_metrics=False)
    b = assemble(Settings(app_id="wk-b", topic_predictions="pred-b", data_dir=tmp_path / "b"), register_metrics=False)
    assert a.app is not b.app and a.app.conf.id == "wk-a" and b.app.conf.id == "wk-b"
    assert a.topics.predictions.get_topic_name() == "pred-a" and b.topics.predictions.get_topic_name() == "pred-b"
    assert a.worker.ownership is a.model_stage.ownership and a.worker.ownership is not b.worker.ownership
    assert a.model_stage.pass_lock is not b.model_stage.pass_lock

    p = owner_partition("fraud", 1)
    for asm in (a, b):
        asm.worker.ownership.live = frozenset({p})
    assert a.worker.owns("fraud") and b.worker.owns("fraud")
    a.worker.ownership.live = frozenset()  # a revoke in worker a
    assert not a.worker.owns("fraud") and b.worker.owns("fraud")
    # Each app has its own agents and the model stage's timer, under the names they always had.
    names = sorted(agent.name for agent in a.app.agents.values())
    assert names == [
        "watchkeeper.streams.agents.ingest.ingest_outcomes",
        "watchkeeper.streams.agents.ingest.ingest_predictions",
    ]
    assert len(b.app.agents) == 2
