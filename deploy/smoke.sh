#!/usr/bin/env bash
# Smoke test of the ClickHouse cluster profile, for any machine with Docker (Compose v2):
#
#   deploy/smoke.sh            # several minutes (it builds the image first); exit 0 only if every count is exact
#   deploy/smoke.sh --keep     # leave the stack up afterwards (tear it down with the printed command)
#
# Steps: build the image; start Kafka, ClickHouse Keeper and the two ClickHouse shards;
# migrate the schema once as the deploy user (the writer of deploy/clickhouse/users.d);
# start the two cluster workers; publish the first half of the demo scenario (with
# malformed lines); kill one worker (SIGKILL); publish the held-back labels of the first
# half and the second half; check the exact counts per model in the cluster's tables;
# bring the killed worker back and check the counts once more; tear everything down.
#
# It runs as its own Compose project (watchkeeper-smoke) with its own volumes, host ports
# and generated passwords, so a stack you already run is not touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECT="watchkeeper-smoke"
COMPOSE_FILE="$ROOT/docker-compose.yml"
KEEP=0
TIMEOUT_S="${SMOKE_TIMEOUT_S:-600}"

for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h | --help)
      sed -n '2,15p' "$0"
      exit 0
      ;;
    *)
      echo "smoke: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

say() { printf 'smoke: %s\n' "$*"; }
fail() {
  printf 'smoke: FAILED: %s\n' "$*" >&2
  exit 1
}

command -v docker >/dev/null || fail "docker is not installed"
docker compose version >/dev/null 2>&1 || fail "the Docker Compose v2 plugin (docker compose) is not installed"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/watchkeeper-smoke.XXXXXX")"
# The generated passwords stay readable by you only; the data folder is written by the image's user.
ENV_FILE="$WORK/smoke.env"
DATA="$WORK/data"
mkdir -m 777 "$DATA"
touch "$ENV_FILE"
chmod 600 "$ENV_FILE"

# Every variable of .env.example, with fresh passwords and ports apart from the default stack's.
secret() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24 || true; }
{
  grep -E '^[A-Z_]+=' "$ROOT/.env.example" |
    grep -vE '^(CLICKHOUSE_WRITER_PASSWORD|CLICKHOUSE_ANALYST_PASSWORD|GRAFANA_ADMIN_PASSWORD|CLICKHOUSE_CLUSTER_SECRET|KAFKA_HOST_PORT|CLICKHOUSE_HTTP_PORT|GRAFANA_PORT|CLICKHOUSE_CLUSTER_HTTP_PORT)='
  echo "CLICKHOUSE_WRITER_PASSWORD=$(secret)"
  echo "CLICKHOUSE_ANALYST_PASSWORD=$(secret)"
  echo "GRAFANA_ADMIN_PASSWORD=$(secret)"
  echo "CLICKHOUSE_CLUSTER_SECRET=$(secret)"
  echo "KAFKA_HOST_PORT=19094"
  echo "CLICKHOUSE_HTTP_PORT=18123"
  echo "GRAFANA_PORT=13000"
  echo "CLICKHOUSE_CLUSTER_HTTP_PORT=18124"
} >"$ENV_FILE"

dc() { docker compose -p "$PROJECT" -f "$COMPOSE_FILE" --env-file "$ENV_FILE" --profile cluster "$@"; }

teardown() {
  local code=$?
  if [ "$KEEP" = 1 ]; then
    say "left running; tear down with: docker compose -p $PROJECT -f $COMPOSE_FILE --env-file $ENV_FILE --profile cluster down -v"
  else
    say "tearing down"
    if [ "$code" != 0 ]; then
      dc logs --no-color --tail 40 worker-cluster clickhouse-01 clickhouse-02 >&2 || true
    fi
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  if [ "$code" = 0 ]; then say "PASSED"; else say "FAILED (exit $code)"; fi
}
trap teardown EXIT

# A one-off container of the cluster workers' service (their settings, the writer's credentials),
# with the data folder at /smoke.
wk() { dc run --rm --no-deps -T -v "$DATA:/smoke" worker-cluster "$@"; }

say "building the image"
dc build worker-cluster

say "starting Kafka, ClickHouse Keeper and the two ClickHouse shards"
dc up -d --wait kafka clickhouse-keeper clickhouse-01 clickhouse-02
dc up -d kafka-init kafka-init-cluster
for init in kafka-init kafka-init-cluster; do
  [ "$(docker wait "$(dc ps -a -q "$init")")" = 0 ] || fail "$init did not create the topics"
done

say "migrating the schema once, as the deploy user"
wk watchkeeper migrate
wk watchkeeper migrate --dry-run >"$DATA/plan.txt"
grep -q "^nothing to migrate" "$DATA/plan.txt" || fail "migrations still pending after migrate: $(cat "$DATA/plan.txt")"
say "ok: the schema is up to date on the cluster"

say "starting the two cluster workers"
dc up -d --wait --no-deps worker-cluster
[ "$(dc ps -q worker-cluster | wc -l)" -eq 2 ] || fail "expected two worker-cluster containers"

say "writing the demo scenario: two halves and the first half's late labels"
wk python - <<'PY'
import time
from pathlib import Path

import orjson

from watchkeeper.scenario import MALFORMED, Scenario
from watchkeeper.settings import load_settings

w = load_settings().window_seconds
minutes = 60
scenario = Scenario(start=(time.time() - minutes * 60 - 3600) // w * w, minutes=minutes)
records = list(scenario.events())
cut = scenario.start + minutes * 30
held = [r for r in records if r["type"] == "outcome" and cut - 600 <= r["ts"] < cut]
held_ids = {id(r) for r in held}
first = [r for r in records if r["ts"] < cut and id(r) not in held_ids]
second = [r for r in records if r["ts"] >= cut]
out = Path("/smoke")
for name, part in (("first", first), ("late", held), ("second", second)):
    (out / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in part))
with open(out / "first.jsonl", "ab") as fh:
    fh.write(b"".join(line + b"\n" for line in MALFORMED))
first_ids = {r["prediction_id"] for r in first if r["type"] == "prediction"}
with open(out / "expected-first.tsv", "w") as fh:
    for m in sorted(scenario.expected):
        p = sum(1 for r in first if r["type"] == "prediction" and r["model"] == m)
        o = sum(1 for r in first if r["type"] == "outcome" and r["model"] == m and r["prediction_id"] in first_ids)
        fh.write(f"{m}\t{p}\t{o}\n")
with open(out / "expected-all.tsv", "w") as fh:
    for m, e in sorted(scenario.expected.items()):
        fh.write(f"{m}\t{e['predictions']}\t{e['labelled']}\n")
(out / "expected-dead-letters.tsv").write_text(f"{len(MALFORMED)}\n")
PY

COUNTS_SQL="SELECT model, toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')) FROM metrics FINAL WHERE segment = '' AND version != '' GROUP BY model ORDER BY model"
RAW_SQL="SELECT model, count() FROM predictions FINAL GROUP BY model ORDER BY model"
DEAD_SQL="SELECT count() FROM dead_letters FINAL"
SHARDS_SQL="SELECT uniqExact(_shard_num) FROM metrics"

# wait_for NAME SQL EXPECTED_FILE: poll the cluster (through the workers' settings) until the query's
# TSV equals the file; fail with both after TIMEOUT_S seconds.
wait_for() {
  local name="$1" sql="$2" expected="$3" deadline=$((SECONDS + TIMEOUT_S))
  while :; do
    if wk watchkeeper sql "$sql" --format TSV >"$DATA/seen.tsv" 2>"$DATA/sql.err" && cmp -s "$DATA/seen.tsv" "$expected"; then
      say "ok: $name"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "--- expected ($name)" >&2
      cat "$expected" >&2
      echo "--- seen" >&2
      cat "$DATA/seen.tsv" "$DATA/sql.err" >&2
      fail "$name: not exact after ${TIMEOUT_S}s"
    fi
    sleep 10
  done
}

say "publishing the first half"
wk watchkeeper publish --quiet /smoke/first.jsonl
wait_for "first half counted per model" "$COUNTS_SQL" "$DATA/expected-first.tsv"
wait_for "malformed lines dead-lettered" "$DEAD_SQL" "$DATA/expected-dead-letters.tsv"

victim="$(dc ps -q worker-cluster | head -n 1)"
say "killing worker container ${victim:0:12} (SIGKILL)"
docker kill --signal KILL "$victim" >/dev/null

say "publishing the late labels of the first half, then the second half"
wk watchkeeper publish --quiet /smoke/late.jsonl
wk watchkeeper publish --quiet /smoke/second.jsonl
wait_for "every prediction and label counted once" "$COUNTS_SQL" "$DATA/expected-all.tsv"
cut -f 1,2 "$DATA/expected-all.tsv" >"$DATA/expected-raw.tsv"
wait_for "raw predictions stored once" "$RAW_SQL" "$DATA/expected-raw.tsv"
echo 2 >"$DATA/expected-shards.tsv"
wait_for "windows on both shards" "$SHARDS_SQL" "$DATA/expected-shards.tsv"

say "bringing the killed worker back"
dc up -d --wait --no-deps worker-cluster
[ "$(dc ps -q worker-cluster | wc -l)" -eq 2 ] || fail "expected two worker-cluster containers again"
sleep 45 # a rebalance and an idle flush later, nothing may be counted twice
wait_for "counts still exact after the rebalance" "$COUNTS_SQL" "$DATA/expected-all.tsv"
wait_for "dead letters still exact" "$DEAD_SQL" "$DATA/expected-dead-letters.tsv"
