# Two commands from a fresh clone: `make sample` runs the job on fixtures/, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup sample test bench wheel-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,cluster]'
	rm -f $(VENV)/.installed-*
	touch $@

# Run the job on both sample days into ./sample-out (SQLite file sample-out/recon.db, no server).
sample: setup
	@mkdir -p sample-out
	-$(BIN)/recon run --from 2026-11-27 --to 2026-11-28 --inbox fixtures/inbox --out sample-out \
		--db sqlite:///sample-out/recon.db; echo "recon exit code: $$? (4 = a settlement file has not arrived, as in the sample)"

# The second pass reads every file in 256-byte Arrow blocks, so each column of every e2e and
# property test comes back in many chunks, as a real day's files (far over 16 MiB) do.
test: setup
	$(BIN)/python -m pytest -q
	RECON_CSV_BLOCK_BYTES=256 $(BIN)/python -m pytest -q tests/e2e tests/unit/test_properties.py

# Build a wheel, install it in a fresh venv outside the checkout, run the sample days from another
# folder and `recon db upgrade` on PostgreSQL (CI runs this after the tests).
wheel-check:
	bash .ci/wheel-check

bench: setup
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf sample-out .pytest_cache
