"""The model stage's SQL: per-window aggregates of the joined predictions and outcomes, fleet-wide.

Every query here reads the pass's whole due set at once — every window of every
model the worker closes in this pass — and groups by model, version and window:
a pass costs a fixed number of statements however many models it covers. The due
set is one array parameter, ``due`` = [(model, version, window start), ...]
(:data:`DUE`), with the models (``models``) and the time range (``t0``, ``t1``)
beside it so that the store reads only their parts through the primary key.

The join happens here: each window's predictions (deduplicated by event_id with
FINAL) are left-joined to the latest outcome of their prediction_id. Only
counts leave the store. The predictions table is the outer FROM of every join:
on a cluster it is a Distributed table, so the whole query goes to the shards
and each model's join runs on its own shard, where its predictions and outcomes
are (``sinks/cluster.py``), instead of on the node the worker asks. Every value
is a query parameter (a model's decision threshold too: :data:`THRESHOLD`); the
only text built in Python is
:func:`binned_sql`'s score column, from a fixed whitelist.
"""

from __future__ import annotations

# Score bins of a binary model's histograms (0.01 wide).
N_BINS = 100


def _ws(t: str = "") -> str:
    """The window start (epoch seconds) of a row's ``ts`` (``t``: the table's alias and a dot, in a join)."""
    return f"toUnixTimestamp(toStartOfInterval({t}ts, toIntervalSecond({{w:UInt32}})))"


def _in_range(t: str = "") -> str:
    """Rows of the due windows' models and time range (the primary key's columns)."""
    return (
        f"{t}model IN {{models:Array(String)}} AND {t}ts >= {{t0:DateTime64(3, 'UTC')}} "
        f"AND {t}ts < {{t1:DateTime64(3, 'UTC')}}"
    )


def _due(t: str = "") -> str:
    """Rows of the due windows: the primary key's models and the time range first, then the exact set."""
    return f"{_in_range(t)} AND ({t}model, {t}version, {_ws(t)}) IN {{due:Array(Tuple(String, String, UInt32))}}"


def _threshold(t: str = "") -> str:
    """A model's decision threshold: configured per model (``thr_m`` → ``thr_v``), else the default ``thr``."""
    return f"transform(toString({t}model), {{thr_m:Array(String)}}, {{thr_v:Array(Float64)}}, {{thr:Float64}})"


WS = _ws()
IN_RANGE = _in_range()
DUE = _due()
THRESHOLD = _threshold()

# Outcomes of the due windows' predictions, found through the primary key wherever their own time falls.
OUTCOMES_OF_DUE = f"(model, prediction_id) IN (SELECT model, prediction_id FROM predictions WHERE {DUE})"
# Joined to the predictions ``p``: the latest 0/1 outcome of each, as ``o.y`` (``o.has`` = 1), and when its
# latest label arrived (event time, ms: ``o.arrived_ms``).
BINARY_OUTCOMES = f"""(
    SELECT model, prediction_id, assumeNotNull(argMax(outcome, ts)) AS y, 1 AS has,
           toUnixTimestamp64Milli(max(ts)) AS arrived_ms
    FROM outcomes FINAL
    WHERE outcome IN (0, 1) AND {OUTCOMES_OF_DUE}
    GROUP BY model, prediction_id
) AS o ON p.model = o.model AND p.prediction_id = o.prediction_id"""

# The due windows' predictions ``p`` — the outer FROM, so that on a cluster the whole query goes to each model's
# shard (its Distributed table's rows are there, and its outcomes) and the join runs there, not on the node asked.
PREDICTIONS_OF_DUE = "FROM predictions AS p FINAL"
WHERE_DUE = f"WHERE {_due('p.')}"
# A row's window start and its model's threshold, for the SELECT lists below.
P_WS = f"{_ws('p.')} AS ws"
WITH_THR = f"WITH {_threshold('p.')} AS thr"

WINDOW_STATS = f"""
{WITH_THR}
SELECT p.model AS model, p.version AS version, {P_WS},
       count() AS predictions,
       countIf(o.has = 1) AS labelled,
       countIf(p.prediction IS NULL OR length(p.scores) > 0) AS n_class,
       countIf(p.prediction < 0 OR p.prediction > 1) AS n_outside_unit,
       countIf(o.has = 1 AND (o.outcome IS NULL OR o.outcome NOT IN (0, 1))) AS n_nonbinary,
       countIf(o.has = 1 AND p.prediction >= thr AND o.outcome = 1) AS tp,
       countIf(o.has = 1 AND p.prediction >= thr AND o.outcome = 0) AS fp,
       countIf(o.has = 1 AND p.prediction < thr AND o.outcome = 0) AS tn,
       countIf(o.has = 1 AND p.prediction < thr AND o.outcome = 1) AS fn,
       countIf(p.fallback = 1) AS fallbacks,
       countIf(o.has = 1 AND toUnixTimestamp(o.ots) > ws + {{w:UInt32}} + {{delay:UInt32}}) AS late_labels,
       countIf(p.published_at IS NOT NULL) AS n_lag,
       countIf(p.baseline IS NOT NULL) AS n_baseline,
       quantileIf(0.95)(dateDiff('millisecond', assumeNotNull(p.published_at), p.ingested_at) / 1000.0,
                        p.published_at IS NOT NULL) AS lag_p95
{PREDICTIONS_OF_DUE}
LEFT JOIN (
    SELECT model, prediction_id, argMax(outcome, ts) AS outcome, max(ts) AS ots, 1 AS has
    FROM outcomes FINAL
    WHERE {OUTCOMES_OF_DUE}
    GROUP BY model, prediction_id
) AS o ON p.model = o.model AND p.prediction_id = o.prediction_id
{WHERE_DUE}
GROUP BY model, version, ws
"""


def binned_sql(score: str) -> str:
    """Per (model, version, window, segment, score bin) sufficient statistics of binary models.

    ``score`` is a column name from a fixed whitelist (the model's prediction or the
    baseline's), never user input. Segments are '' (all traffic) plus ``key=value``
    for each model's watched segment keys (``segkeys``: ``model/key`` strings).
    """
    if score not in ("prediction", "baseline"):
        raise ValueError(score)
    return f"""
{WITH_THR}, assumeNotNull(p.{score}) AS s
SELECT p.model AS model, p.version AS version, {P_WS}, seg,
       least(toUInt32(floor(s * {N_BINS})), {N_BINS - 1}) AS bin,
       count() AS n,
       sum(s) AS score_sum,
       countIf(s >= thr) AS n_pred_pos,
       countIf(o.has = 1 AND o.y = 1) AS pos,
       countIf(o.has = 1 AND o.y = 0) AS neg,
       sumIf(s, o.has = 1) AS score_sum_labeled,
       countIf(o.has = 1 AND s >= thr AND o.y = 1) AS tp,
       countIf(o.has = 1 AND s >= thr AND o.y = 0) AS fp,
       countIf(o.has = 1 AND s < thr AND o.y = 0) AS tn,
       countIf(o.has = 1 AND s < thr AND o.y = 1) AS fn,
       sumIf(-(o.y * log(greatest(s, 1e-15)) + (1 - o.y) * log(greatest(1 - s, 1e-15))),
             o.has = 1) AS sum_log_loss,
       sumIf(pow(s - o.y, 2), o.has = 1) AS sum_brier
{PREDICTIONS_OF_DUE}
ARRAY JOIN arrayConcat([''], arrayFilter(x -> x != '', arrayMap((k, v) ->
    if(has({{segkeys:Array(String)}}, concat(toString(p.model), '/', k)), concat(k, '=', v), ''),
    mapKeys(p.segments), mapValues(p.segments)))) AS seg
LEFT JOIN {BINARY_OUTCOMES}
{WHERE_DUE} AND p.{score} IS NOT NULL AND p.{score} >= 0 AND p.{score} <= 1
GROUP BY model, version, ws, seg, bin
"""


# The joined rows of the due windows, shared by the multiclass and regression aggregates.
_JOINED = f"""
{PREDICTIONS_OF_DUE}
LEFT JOIN (
    SELECT model, prediction_id, argMax(outcome, ts) AS y,
           argMax(if(outcome_class != '', outcome_class, toString(outcome)), ts) AS oc, 1 AS has
    FROM outcomes FINAL
    WHERE {OUTCOMES_OF_DUE}
    GROUP BY model, prediction_id
) AS o ON p.model = o.model AND p.prediction_id = o.prediction_id
{WHERE_DUE}
"""

# Predicted class: the string prediction, else the class of the highest score, else the number as text.
MULTICLASS = (
    f"""
SELECT p.model AS model, p.version AS version, {P_WS},
       if(p.prediction_class != '', p.prediction_class,
          if(length(p.scores) > 0, mapKeys(p.scores)[indexOf(mapValues(p.scores), arrayMax(mapValues(p.scores)))],
             toString(p.prediction))) AS pc,
       if(o.has = 1, o.oc, '') AS oc,
       count() AS n,
       sumIf(-log(greatest(p.scores[o.oc], 1e-15)), o.has = 1 AND mapContains(p.scores, o.oc)) AS ll,
       countIf(o.has = 1 AND mapContains(p.scores, o.oc)) AS n_ll
"""
    + _JOINED
    + "GROUP BY model, version, ws, pc, oc"
)

REGRESSION = (
    f"""
SELECT p.model AS model, p.version AS version, {P_WS},
       countIf(o.has = 1) AS n,
       sumIf(p.prediction - o.y, o.has = 1) AS sum_err,
       sumIf(abs(p.prediction - o.y), o.has = 1) AS sum_abs_err,
       sumIf(pow(p.prediction - o.y, 2), o.has = 1) AS sum_sq_err,
       sumIf(o.y, o.has = 1) AS sum_y,
       sumIf(o.y * o.y, o.has = 1) AS sum_y2,
       countIf(p.prediction IS NOT NULL) AS n_pred,
       sumIf(p.prediction, p.prediction IS NOT NULL) AS sum_pred
"""
    + _JOINED
    + "AND p.prediction IS NOT NULL AND (o.has = 0 OR o.y IS NOT NULL) GROUP BY model, version, ws"
)


# Segment keys few enough in values (within the due windows) to be watched (fairness, per-segment metrics).
SEGMENT_KEYS = f"""
SELECT model, k FROM (
    SELECT model, k, uniqExact(v) AS values FROM predictions
    ARRAY JOIN mapKeys(segments) AS k, mapValues(segments) AS v
    WHERE {DUE}
    GROUP BY model, k)
WHERE values <= {{limit:UInt32}}
ORDER BY model, k
"""

# Latency as the buckets of a mergeable sketch (watchkeeper.detectors.LatencySketch): ``LATENCY_BUCKETS``.
LATENCY_BUCKETS = f"""
SELECT model, version, {WS} AS ws,
       if(latency_ms <= {{lmin:Float64}}, {{kzero:Int32}},
          toInt32(least(ceil(log(latency_ms) / log({{gamma:Float64}})), {{kmax:Int32}}))) AS key,
       count() AS cnt, sum(latency_ms) AS total
FROM predictions FINAL
WHERE {DUE} AND latency_ms IS NOT NULL AND isFinite(latency_ms)
GROUP BY model, version, ws, key
"""


# Dead letters of a model among the Kafka messages that carried its window's predictions (same topic,
# partition and offset range): bad events of an envelope and bad messages between good ones alike.
DEAD_LETTERS_OF_WINDOWS = f"""
SELECT r.model AS model, r.version AS version, r.ws AS ws, count() AS dead
FROM (
    SELECT model, version, {WS} AS ws, src_partition AS part, min(src_offset) AS lo, max(src_offset) AS hi
    FROM predictions FINAL
    WHERE {DUE}
    GROUP BY model, version, ws, part
) AS r
INNER JOIN (
    SELECT model, partition, offset FROM dead_letters FINAL
    WHERE topic = {{topic:String}} AND model IN {{models:Array(String)}}
) AS d ON d.model = r.model AND d.partition = r.part
WHERE d.offset >= r.lo AND d.offset <= r.hi
GROUP BY model, version, ws
"""

# Outcomes whose prediction never arrived (looked for up to a day before the outcome), per outcome window
# (``due`` holds (model, '', window start) for them).
ORPHANS = f"""
SELECT model, {WS} AS ws,
       count() AS outcomes,
       countIf((model, prediction_id) NOT IN (
           SELECT model, prediction_id FROM predictions
           WHERE model IN {{models:Array(String)}} AND ts >= {{t0:DateTime64(3, 'UTC')}} - INTERVAL 1 DAY
             AND ts < {{t1:DateTime64(3, 'UTC')}})) AS orphaned
FROM outcomes FINAL
WHERE {IN_RANGE} AND (model, '', {WS}) IN {{due:Array(Tuple(String, String, UInt32))}}
GROUP BY model, ws
"""

# Paired comparison of a binary model with its baseline on the same labelled predictions: the
# discordant pairs (model right and baseline wrong; the reverse) and the pairs judged, per window.
PAIRED = f"""
{WITH_THR}, assumeNotNull(p.prediction) AS s, assumeNotNull(p.baseline) AS b
SELECT p.model AS model, p.version AS version, {P_WS},
       countIf(o.has = 1) AS n,
       countIf(o.has = 1 AND (s >= thr) = (o.y = 1) AND (b >= thr) != (o.y = 1)) AS model_right,
       countIf(o.has = 1 AND (s >= thr) != (o.y = 1) AND (b >= thr) = (o.y = 1)) AS baseline_right
{PREDICTIONS_OF_DUE}
LEFT JOIN {BINARY_OUTCOMES}
{WHERE_DUE}
  AND p.prediction IS NOT NULL AND p.prediction >= 0 AND p.prediction <= 1
  AND p.baseline IS NOT NULL AND p.baseline >= 0 AND p.baseline <= 1
GROUP BY model, version, ws
"""
