# Two commands matter: `make demo` (the main job) and `make test` (the whole test suite).
# Both create the project's own environment in .venv when it is missing or out of date.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA_DIR ?= data
export PYTHONDONTWRITEBYTECODE := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv data test lint test-fast demo release check-release benchmark clean

help:
	@echo "make demo      the main job: fetch data, release, grade a small class, print the grade table"
	@echo "make test      lint + the whole test suite (slow end-to-end tests included)"
	@echo "make data      fetch Fashion-MNIST (set CNN_COURSE_MIRROR=DIR to use a local mirror)"
	@echo "make release   regenerate assignments/ from solutions/ with nbgrader generate_assignment"
	@echo "make benchmark grading and notebook timings -> benchmarks/RESULTS.md"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(PY) -m data_scripts.fetch fashion_mnist --root $(DATA_DIR)

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) data lint
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

demo: $(STAMP) data
	$(PY) -m autograder demo

release: $(STAMP)
	$(PY) -m autograder release

benchmark: $(STAMP) data
	$(PY) -m benchmarks.run

clean:
	rm -rf submitted autograded feedback gradebook.db demo_out .autograder_cache
