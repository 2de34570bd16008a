"""docs/design.md says what the code does: the sharded model stage, the alert kinds, the client.

The design notes drifted behind the code once (a model stage "on the worker holding partition 0"
after it was sharded, kinds and the light client "being added" after they landed); these checks
tie the statements a reader acts on to the code they describe.
"""

from __future__ import annotations

import re
from pathlib import Path

from watchkeeper.alerts.model import KINDS

ROOT = Path(__file__).resolve().parents[2]
DESIGN = (ROOT / "docs" / "design.md").read_text()


def test_the_model_stage_is_described_as_sharded_by_model() -> None:
    from watchkeeper.windows.ownership import owner_partition

    assert "partition 0" not in DESIGN
    assert "CRC32(model) % partitions" in DESIGN and "windows/ownership.py" in DESIGN
    assert owner_partition("fraud", 6) == 4  # the hash the notes name is the one the code uses


def test_every_alert_kind_is_listed_as_part_of_the_contract() -> None:
    contract = DESIGN.split("## Contract", 1)[1]
    listed = set(re.findall(r"`([a-z_]+)`", contract.split("Alert kinds are", 1)[1].split(";", 1)[0]))
    assert listed == set(KINDS)
    assert "being added" not in DESIGN


def test_the_layout_names_only_folders_that_exist() -> None:
    layout = DESIGN.split("## Repository layout", 1)[1].split("```", 2)[1]
    for line in layout.splitlines():
        name = line.split(" ", 1)[0]
        if name.endswith("/"):
            assert (ROOT / name).is_dir(), name
