# Two commands on a fresh machine: `make run` sets up and starts the workbench, `make test` sets up and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup bench clean cli docs

# The app needs the workbench alone; the tests add their tools, PostgreSQL's driver and a full MLflow server.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,postgres]'
	touch $@

setup: $(BIN)/.installed-test

run: $(BIN)/.installed
	$(BIN)/digit-workbench

cli: $(BIN)/.installed  # make cli ARGS='run --preset basic': any headless command, through the venv's digit-workbench
	$(BIN)/digit-workbench $(ARGS)

test: setup  # the tests side by side, one worker per core; the slowest named at the end
	$(BIN)/pytest -q -rs -n auto --dist loadgroup --durations=15

docs: $(BIN)/.installed  # the guide's pictures, drawn again by the app itself (docs/make_pictures.py)
	$(BIN)/python docs/make_pictures.py

bench: setup
	$(BIN)/python benchmarks/batched_vs_loop.py
	$(BIN)/python benchmarks/table2.py
	$(BIN)/python benchmarks/latency.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
