"""``watchkeeper reference MODEL FILE``: a model's training data as its drift reference.

CSV, Parquet or JSONL. Every column is a feature except the event's own fields
(``prediction`` is kept as the reference score distribution; ids, times, labels
and segments are ignored); JSONL lines may carry a ``features`` object instead.
Numbers (and booleans) become numeric features, anything else categorical. The
rows go to the ``reference`` table, replacing the model's earlier reference, and
every worker reads them from there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from watchkeeper.sinks.writer import Store

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
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return pd.read_json(path, lines=True)
    raise ValueError(f"{path}: expected .csv, .parquet or .jsonl")


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


def load_reference(store: Store, model: str, path: Path, version: str = "") -> int:
    """Replace ``model``'s reference (for ``version``, '' = every version) with the file's rows."""
    cols = reference_columns(read_table(path))
    n = len(cols["row_id"])
    if n == 0:
        raise ValueError(f"{path}: no rows")
    # The new rows first, then the older ones deleted (by the store's clock): a DELETE applied late — from
    # a cluster's queue — cannot remove the new rows.
    (t,) = store.query_rows("SELECT now64(3, 'UTC')")[0]
    store.insert("reference", {"model": [model] * n, "version": [version] * n, **cols, "loaded_at": [t] * n})
    store.delete(
        "reference",
        "model = {m:String} AND version = {v:String} AND loaded_at < {t:DateTime64(3, 'UTC')}",
        {"m": model, "v": version, "t": t},
    )
    return n
