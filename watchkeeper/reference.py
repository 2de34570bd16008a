"""``watchkeeper reference MODEL FILE``: a model's training data as its drift reference.

CSV, Parquet or JSONL. Every column is a feature except the event's own fields
(``prediction`` is kept as the reference score distribution; ids, times, labels
and segments are ignored); JSONL lines may carry a ``features`` object instead.
Numbers (and booleans) become numeric features, anything else categorical. The
rows go to the ``reference`` table, replacing the model's earlier reference, and
every worker reads them from there.

A bad file never replaces a good reference. Unless ``force``, a file is refused
(``ValueError``, before anything is written) when it has fewer rows than the drift
tests need (:data:`MIN_ROWS`), or when it shares no feature with the model's recent
predictions (the last day of its traffic) — a semicolon-separated file read as one
column ``amount;n``, a file of another model. Features of the recent predictions that
the file lacks are reported (:attr:`Loaded.missing`): they are not tested for drift
against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from watchkeeper.sinks.writer import Store
from watchkeeper.windows.drift import MIN_REFERENCE_ROWS

# Fewer rows than this and the drift stage would not test against the reference (a window of traffic
# needs as many to become one): refused unless forced.
MIN_ROWS = MIN_REFERENCE_ROWS
# What "recent predictions" means: the last day of the model's traffic (by event time, so a replay counts).
# Two statements, not a scalar subquery: in cluster mode the initiator would run that on every shard first.
LATEST_PREDICTION = """
SELECT max(ts), count() FROM predictions WHERE model = {m:String} AND ({v:String} = '' OR version = {v:String})
"""
RECENT_FEATURES = """
SELECT arraySort(groupUniqArrayArray(mapKeys(features))), arraySort(groupUniqArrayArray(mapKeys(features_cat)))
FROM predictions
WHERE model = {m:String} AND ({v:String} = '' OR version = {v:String})
  AND ts >= {latest:DateTime64(3, 'UTC')} - INTERVAL 1 DAY
"""


@dataclass(frozen=True)
class Loaded:
    """What :func:`load_reference` loaded, and how it compares with the model's recent predictions."""

    rows: int
    features: list[str]  # the reference's features (numeric and categorical)
    recent: list[str] | None  # the features of the model's recent predictions (None: no predictions yet)
    forced: bool = False

    @property
    def missing(self) -> list[str]:
        """Features of the recent predictions that the reference lacks (not tested for drift against it)."""
        return sorted(set(self.recent or ()) - set(self.features))


IGNORED = {
    "prediction_id",
    "model",
    "version",
    "ts",
    "outcome",
    "label",
    "target",
    "event_id",
    "type",
    "segments",
    "scores",
    "latency_ms",
    "fallback",
    "baseline",
}


def read_table(path: Path) -> pd.DataFrame:
    """The file as a frame; a file that cannot be read as its suffix says raises ``ValueError`` naming it.

    >>> read_table(Path("train.txt"))
    Traceback (most recent call last):
    ValueError: train.txt: expected .csv, .parquet or .jsonl
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        kind, read = "CSV", pd.read_csv
    elif suffix in (".parquet", ".pq"):
        kind, read = "Parquet", pd.read_parquet
    elif suffix in (".jsonl", ".ndjson", ".json"):
        kind, read = "JSONL", partial(pd.read_json, lines=True)
    else:
        raise ValueError(f"{path}: expected .csv, .parquet or .jsonl")
    try:
        return read(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file (no header, no rows)") from None
    except (ValueError, OSError) as exc:  # pandas' and pyarrow's parse errors are ValueErrors
        detail = " ".join(str(exc).split())[:300]
        raise ValueError(f"{path}: not readable as {kind}: {detail}") from None


def _split(record: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    numeric: dict[str, float] = {}
    categorical: dict[str, str] = {}
    for k, v in record.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            numeric[k] = math.nan
        elif isinstance(v, bool | int | float):
            numeric[k] = float(v)
        else:
            categorical[k] = str(v)
    return numeric, categorical


def reference_columns(df: pd.DataFrame) -> dict[str, list[Any]]:
    """Rows of the ``reference`` table (without model/version) from a training-data frame."""
    cols: dict[str, list[Any]] = {"row_id": [], "features": [], "features_cat": [], "prediction": []}
    feature_cols = [c for c in df.columns if c not in IGNORED and c not in ("features", "prediction")]
    for i, rec in enumerate(df.to_dict(orient="records")):
        feats = rec.get("features") if isinstance(rec.get("features"), dict) else {}
        feats = {**feats, **{c: rec[c] for c in feature_cols}}
        num, cat = _split(feats)
        pred = rec.get("prediction")
        cols["row_id"].append(i)
        cols["features"].append(num)
        cols["features_cat"].append(cat)
        cols["prediction"].append(float(pred) if isinstance(pred, int | float) and not math.isnan(pred) else None)
    return cols


def _features(cols: dict[str, list[Any]]) -> list[str]:
    return sorted({k for row in cols["features"] for k in row} | {k for row in cols["features_cat"] for k in row})


def recent_features(store: Store, model: str, version: str = "") -> list[str] | None:
    """The features of ``model``'s predictions in the last day of its traffic (None: no predictions)."""
    ((latest, n),) = store.query_rows(LATEST_PREDICTION, {"m": model, "v": version})
    if not n:
        return None
    ((numeric, categorical),) = store.query_rows(RECENT_FEATURES, {"m": model, "v": version, "latest": latest})
    names = sorted({*numeric, *categorical})
    return names or None


def _listed(names: list[str], limit: int = 12) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _separator_hint(features: list[str]) -> str:
    for name in features:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in name:
                return f" (a column is named {name!r}: is the file separated by {what}? save it comma-separated)"
    return ""


def load_reference(store: Store, model: str, path: Path, version: str = "", *, force: bool = False) -> Loaded:
    """Replace ``model``'s reference (for ``version``, '' = every version) with the file's rows.

    Unless ``force``: refused (``ValueError``, nothing written) with fewer than :data:`MIN_ROWS` rows, or
    when the file's features share none with the model's recent predictions.
    """
    df = read_table(path)
    cols = reference_columns(df)
    n = len(cols["row_id"])
    if n == 0:
        raise ValueError(f"{path}: no rows")
    if not any(cols["features"]) and not any(cols["features_cat"]) and all(p is None for p in cols["prediction"]):
        # Only ids, times, labels and the like: nothing to compare a window's features or scores with.
        raise ValueError(
            f"{path}: no feature or prediction columns (found {', '.join(map(str, df.columns))}; "
            f"ignored as not features: {', '.join(sorted(IGNORED))})"
        )
    features = _features(cols)
    if n < MIN_ROWS and not force:
        raise ValueError(
            f"{path}: {n} rows; the drift tests need at least {MIN_ROWS} to compare a window with "
            "(the model's current reference is kept; --force loads it anyway)"
        )
    recent = recent_features(store, model, version)
    if recent and features and not set(recent) & set(features) and not force:
        raise ValueError(
            f"{path}: shares no feature with the recent predictions of {model}{' ' + version if version else ''}: "
            f"the file has {_listed(features)}; the predictions have {_listed(recent)}, all missing from the file"
            f"{_separator_hint(features)}. The model's current reference is kept; --force loads it anyway."
        )
    # The new rows first, then the older ones deleted (by the store's clock): a DELETE applied late — from
    # a cluster's queue — cannot remove the new rows.
    (t,) = store.query_rows("SELECT now64(3, 'UTC')")[0]
    store.insert("reference", {"model": [model] * n, "version": [version] * n, **cols, "loaded_at": [t] * n})
    store.delete(
        "reference",
        "model = {m:String} AND version = {v:String} AND loaded_at < {t:DateTime64(3, 'UTC')}",
        {"m": model, "v": version, "t": t},
    )
    return Loaded(n, features, recent, forced=force)
