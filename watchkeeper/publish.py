"""``watchkeeper publish``: JSONL files of prediction/outcome records into Kafka.

Each line is an event with ``"type": "prediction" | "outcome"``. Valid records
travel in envelopes through the publisher client; a line that is not a JSON
object with a known ``type`` is sent on its own, as it is, so that the worker
judges it and dead-letters it with the reason (nothing is dropped silently).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import orjson
from tqdm import tqdm

from watchkeeper.client import Publisher


def publish_lines(pub: Publisher, lines: Iterable[bytes], counts: Counter[str]) -> None:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        kind = doc.pop("type", None) if isinstance(doc, dict) else None
        if kind in ("prediction", "outcome") and isinstance(doc, dict):
            pid = doc.get("prediction_id")
            pub.send_raw(kind, orjson.dumps(doc), pid if isinstance(pid, str) else "")
            counts[kind + "s"] += 1
        else:
            # Outcomes are the rarer topic; unknown lines go where predictions go.
            target = "outcome" if kind == "outcome" else "prediction"
            pub.send_message(target, line)
            counts["unrecognised"] += 1


def publish_files(
    pub: Publisher, paths: Iterable[Path], progress: bool = True, desc: str = "publishing"
) -> Counter[str]:
    """Publish every line of the files; returns counts by kind."""
    paths = list(paths)
    counts: Counter[str] = Counter()
    total = sum(p.stat().st_size for p in paths)
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
        for path in paths:
            with open(path, "rb") as fh:
                for line in fh:
                    publish_lines(pub, (line,), counts)
                    bar.update(len(line))
    pub.flush()
    return counts
