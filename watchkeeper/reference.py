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
from functools import partial
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


def load_reference(store: Store, model: str, path: Path, version: str = "") -> int:
    """Replace ``model``'s reference (for ``version``, '' = every version) with the file's rows."""
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
