"""The alerting tables that people write to: ``alert_silences`` (defined with the others in ``sinks/schema.py``).

Silences and acknowledgements are human actions in wall time. They never change
what the engine decides (the ``alerts`` table stays a function of the data, so
replays stay exact); they only hold back notifications. One row per action;
expiring a silence writes a newer row with the same ``silence_id`` (a
ReplacingMergeTree on ``created_at``, read with ``FINAL``).

>>> SILENCES
'alert_silences'
"""

from __future__ import annotations

from typing import Any

from watchkeeper.sinks.schema import SILENCES as _SILENCES

SILENCES = _SILENCES.name


def migrate(store: Any) -> None:
    """Make sure the store's schema (``alert_silences`` included) is migrated; retention is left as it is."""
    store.migrate(None)
