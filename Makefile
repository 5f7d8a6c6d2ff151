# Two commands: `make serve` and `make test`. Both set everything up from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEXT_GENERATION_VERSION := 0.7.0

.PHONY: install serve defaults test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Hugging Face's TGI client, for the tests: without its dependencies (see pyproject's dev extra).
	$(BIN)/python -m pip install --quiet --no-deps 'text-generation==$(TEXT_GENERATION_VERSION)'
	touch $(STAMP)

install: $(STAMP)

defaults: $(STAMP)
	$(BIN)/nlp-service defaults

# Serves at once; the default models missing from ./models are built in the background, quickest first, and
# each answers as soon as it is built (`make defaults` builds them all up front instead).
serve: $(STAMP)
	exec $(BIN)/nlp-service serve --build-defaults

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP) defaults
	$(BIN)/python benchmarks/vectors.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Build the Docker images and check them for real (docker/smoke.sh: installs Docker, starts dockerd, as root).
.PHONY: docker-test
docker-test:
	bash docker/smoke.sh
