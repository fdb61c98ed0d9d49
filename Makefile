# The README's commands. `make run` serves on http://127.0.0.1:8000; `make test` runs the tests.
PYTHON ?= python3.11
VENV ?= .venv
# gpu when an NVIDIA driver is present, else cpu; override with `make run DEVICE=gpu`.
DEVICE ?= $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(DEVICE)
ARGS ?=

.PHONY: install model run test test-fast bench lint clean
.DEFAULT_GOAL := run

$(STAMP): pyproject.toml scripts/install.sh
	scripts/install.sh $(DEVICE) $(VENV) $(PYTHON)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# The default model converted into the cache folder (`make run` does it at its first start).
model: $(STAMP)
	$(PY) -m app prepare-model

run: $(STAMP)
	$(PY) -m app $(ARGS)

# The fast tests spread over up to 4 cores (pytest-xdist: 4 min instead of 8 on 2 cores), then
# the end-to-end ones one at a time (each engine wants a core of its own). Both parts run, and
# either failing fails; exit 5 (nothing selected: ARGS naming e2e tests alone) is no failure.
WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))
test: $(STAMP)
	scripts/test-deps.sh
	$(PY) -m pytest -m "not e2e" -n $(WORKERS) $(ARGS) || [ $$? -eq 5 ] || failed=1; \
	$(PY) -m pytest -m e2e $(ARGS) || [ $$? -eq 5 ] || failed=1; \
	exit $${failed:-0}

# Everything but the end-to-end tests against the real engine: seconds, not minutes.
test-fast: $(STAMP)
	scripts/test-deps.sh
	$(PY) -m pytest -m "not e2e" -n $(WORKERS) $(ARGS)

# The whole benchmark suite (about 1.5 h on 2 cores): benchmarks/README.md has the table.
bench: $(STAMP)
	$(PY) -m benchmarks suite $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check app tests benchmarks
	$(PY) -m mypy app

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
