# watchkeeper — `make demo`, `make test`, `make bench`. Each bootstraps .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# alibi-detect pins numpy < 2 and Python < 3.13: its tests run in a venv of their own, under
# constraints of their own, so the core (.venv, the image) stays on numpy 2.
ALIBI_VENV := .venv-alibi
ALIBI_BIN := $(ALIBI_VENV)/bin
ALIBI_STAMP := $(ALIBI_VENV)/.installed

.PHONY: demo test test-slow test-shards test-fast test-alibi bench bench-quick bench-scale bench-detect bench-alerts bench-alerts-live bench-alerts-not-tuned bench-false-alarms bench-looks lint constraints clean

# The light client (clients/python, a dependency of the service) installs from the repository first.
$(STAMP): pyproject.toml constraints.txt clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./clients/python -e ".[dev,embedded,grafana]"
	touch $(STAMP)

.venv: $(STAMP)

$(ALIBI_STAMP): pyproject.toml constraints-alibi.txt clients/python/pyproject.toml
	$(PYTHON) -m venv $(ALIBI_VENV)
	$(ALIBI_BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(ALIBI_BIN)/python -m pip install --quiet -c constraints-alibi.txt -e ./clients/python -e ".[dev,embedded,grafana,alibi]"
	touch $(ALIBI_STAMP)

.venv-alibi: $(ALIBI_STAMP)

demo: .venv
	$(BIN)/watchkeeper demo

# The report test opens the HTML report in headless Chromium, from the Debian chromium package.
test: .venv
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: the report browser test will be skipped"
	$(BIN)/python -m pytest -m "not slow"
	$(MAKE) test-alibi

# The suites marked slow (the demo, faults with kill -9 and broker restarts, sharding, two shards, the live alert bench), about 14 minutes.
test-slow: .venv
	$(BIN)/python -m pytest -m slow

# The tests marked `alibi` (skipped in .venv), where alibi-detect is installed: fails if it is not.
test-alibi: .venv-alibi
	$(ALIBI_BIN)/python -m pytest -m alibi --require-alibi tests detectors

# The worker on two embedded shards behind a router against one store (about 3.5 minutes; marked slow).
test-shards: .venv
	$(BIN)/python -m pytest tests/integration/test_two_shards.py

test-fast: .venv
	$(BIN)/python -m pytest -m "not slow and not integration"

bench: .venv
	$(BIN)/python -m bench.run

# The envelope ratio and the memory of the worker only (a few minutes): run it before submitting a change to
# streams/, sinks/writer.py, windows/ or what the worker imports; writes bench/results/bench-quick.json.
bench-quick: .venv
	$(BIN)/python -m bench.run --quick

# Model-stage throughput: a wide fleet, late-label rewrites, then 1, 2 and 3 workers three times each
# (median and spread); exits 1 on a missed target; writes bench/results/scale.json (about 15 minutes).
bench-scale: .venv
	$(BIN)/python -m bench.scale

bench-detect: .venv
	$(BIN)/python -m bench.detect

# Alert delay, missed and false alerts per scenario family, this policy beside the previous one (~10 min).
bench-alerts: .venv
	$(BIN)/python -m bench.alerts

# Live: three models streamed in real time through the client, broker and a worker to a webhook;
# seconds from a change to its page, then a replay of the same events (about 15 minutes).
bench-alerts-live: .venv
	$(BIN)/python -m bench.alerts --live

# Scenario families the alert defaults were not designed on, in a table of their own (~10 min).
bench-alerts-not-tuned: .venv
	$(BIN)/python -m bench.alerts --not-tuned

# False alerts of the default policy on 10 stable model-months, and its power (~35 min on 2 busy cores).
bench-false-alarms: .venv
	$(BIN)/python -m bench.false_alarms

# Drift decided before a window ends: false decisions of the looks on stable streams (10 model-months per
# stream), the share of chance alarms they confirm, and the delay from a mean shift to its decision
# (15 to 30 minutes on 2 busy cores); writes bench/results/looks.json.
bench-looks: .venv
	$(BIN)/python -m bench.looks

lint: .venv
	$(BIN)/ruff check .

# Re-pin every dependency from a fresh resolve on $(PYTHON) (run after changing pyproject.toml, then
# commit both files): constraints.txt for .venv and the image, constraints-alibi.txt for .venv-alibi.
CORE_PROJECT := .[dev,embedded,grafana]
ALIBI_PROJECT := .[dev,embedded,grafana,alibi]

# $(call pin,FILE,PROJECT): a fresh venv, the project installed without constraints, its versions into FILE.
define pin
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/python -m pip install --quiet --upgrade "pip>=24"
	.venv-pin/bin/python -m pip install --quiet -e ./clients/python -e "$(2)"
	.venv-pin/bin/python -m pip freeze --exclude-editable | grep -v '^watchkeeper' > $(1)
	rm -rf .venv-pin
endef

constraints:
	$(call pin,constraints.txt,$(CORE_PROJECT))
	$(call pin,constraints-alibi.txt,$(ALIBI_PROJECT))

clean:
	rm -rf $(VENV) $(ALIBI_VENV) data reports .pytest_cache

# Retrain decided on the labels so far: false decisions on 12 stable model-months, and the delay
# after a concept change on a fast and a slow stream (about 14 minutes on a shared machine);
# writes bench/results/label_looks.json.
.PHONY: bench-label-looks
bench-label-looks: .venv
	$(BIN)/python -m bench.label_looks
