# watchkeeper — `make demo`, `make test`, `make bench`. Each bootstraps .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-scale bench-detect bench-alerts lint constraints clean

# The light client (clients/python, a dependency of the service) installs from the repository first.
$(STAMP): pyproject.toml constraints.txt clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./clients/python -e ".[dev,alibi]"
	touch $(STAMP)

.venv: $(STAMP)

demo: .venv
	$(BIN)/watchkeeper demo

# The report test opens the HTML report in headless Chromium, from the Debian chromium package.
test: .venv
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: the report browser test will be skipped"
	$(BIN)/python -m pytest

test-fast: .venv
	$(BIN)/python -m pytest -m "not slow and not integration"

bench: .venv
	$(BIN)/python -m bench.run

# The sharded model stage with 1, 2 and 3 workers on one backlog of 200 models (about 10 minutes).
bench-scale: .venv
	$(BIN)/python -m bench.scale

bench-detect: .venv
	$(BIN)/python -m bench.detect

# Alert delay, missed and false alerts per scenario family, this policy beside the previous one (~10 min).
bench-alerts: .venv
	$(BIN)/python -m bench.alerts

lint: .venv
	$(BIN)/ruff check .

# Re-pin every dependency (run after changing pyproject.toml, then commit constraints.txt).
constraints:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^watchkeeper' > constraints.txt

clean:
	rm -rf $(VENV) data reports .pytest_cache
