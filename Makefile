# The front door. `make help` lists every target.
# Only Python 3.11+ and make are needed: the first target that needs the
# environment creates .venv and installs the project into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= notebooks/params.yaml
HOST   ?= 127.0.0.1
PORT   ?= 8000

# numpy asks the kernel to back every large array with huge pages. Where transparent hugepages
# are defragmented on demand (/sys/kernel/mm/transparent_hugepage/defrag = madvise, a common
# default), each new large array can stall in memory compaction. Measured on this 2-core machine:
# the item-item similarity 9.1 s -> 3.3 s, 03_modeling 194 s -> 132 s without the advice.
# Results do not change (only how memory is mapped); NUMPY_MADVISE_HUGEPAGE=1 restores numpy's.
export NUMPY_MADVISE_HUGEPAGE ?= 0

.DEFAULT_GOAL := help
.PHONY: help all install lock pipeline book test unit lint nbval lab serve demo retrain holdback example bench ranking-variants bench-rerank bench-load screenshots screenshot docker-lint browser package-map openapi-snapshot clean

help: ## list the targets
	@echo "usage: make <target>"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

# The versions installed are the ones `make test` last passed with (.ci/constraints.txt), so a
# clean clone installs what CI checked, not whatever the registry holds that day. uv (itself
# pinned there) installs them: the same versions as pip (compared with pip freeze), in 53 s
# instead of pip's 72 s on this 2-core machine. --compile-bytecode as pip does: where
# PYTHONDONTWRITEBYTECODE is set (as on CI), every process would otherwise compile every
# module it imports, each time (make test took 1,164 s instead of about 1,080).
LOCK := .ci/constraints.txt
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(LOCK) uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c $(LOCK) -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

install: $(STAMP) ## create .venv (if missing) and install the project with its test tools

lock: ## re-resolve pyproject.toml's ranges into .ci/constraints.txt (then run make test)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp/venv" && "$$tmp/venv/bin/python" -m pip install --quiet uv && \
	"$$tmp/venv/bin/uv" pip install --quiet --python "$$tmp/venv/bin/python" -e ".[test,dvc-gs]" && \
	{ sed -n '/^#/p' $(LOCK); "$$tmp/venv/bin/python" -m pip freeze --exclude-editable; } > $(LOCK).tmp && \
	mv $(LOCK).tmp $(LOCK) && echo "wrote $(LOCK); now run make test"

all: pipeline book ## run every notebook on the embedded default data, then build the book
	@echo "Book: file://$(CURDIR)/_build/html/index.html"

pipeline: $(STAMP) ## execute the notebooks in order with papermill (PARAMS=notebooks/params.yaml)
	$(BIN)/recsys-pipeline --params $(PARAMS)

book: $(STAMP) ## build the Jupyter Book from the executed notebooks (warnings are errors)
	$(BIN)/python -m recsys_utils.run.book

# The pytest suite and the pipeline + nbval run side by side: one after the other they kept
# about 1.3 of CI's 2 cores busy (many tests wait on servers and JVMs; a notebook mostly runs
# on one core). Measured on a fresh clone on 2 cores: 905 s instead of 1,144 s. Every test
# works in its own temporary project, never in this one's data/ or outputs/. Their output
# interleaves. A failure in one lets the other finish (make waits for it), then fails `make test`.
test: lint ## everything CI runs: lint, then the unit tests alongside the pipeline (01-05) and nbval
	$(MAKE) --no-print-directory -j2 unit nbval

lint: $(STAMP) ## ruff over the package, tests, benchmarks and notebooks
	$(BIN)/ruff check recsys_utils tests benchmarks notebooks

# Test workers (pytest-xdist); every test uses its own temporary project. 4 on CI's 2 cores:
# many tests wait (servers, JVMs, subprocesses), so more workers than cores still pay
# (measured on 2 cores: 513 s with 2 workers, 440 s with 4).
WORKERS ?= 4
unit: $(STAMP) browser ## the unit and integration tests (WORKERS=4 processes)
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal

# The demo's browser test needs Debian's chromium; install it where we may (root, apt).
browser: ## install Debian's chromium for the demo's browser test (as root, with apt; else a note)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ; } || \
		echo "note: chromium not installed; the browser test will say it is skipped"


# nbval re-executes the executed notebooks and compares their checked outputs. `make test` runs
# and checks 01-05 only (NBVAL_ALL=1: all six): the 06_scale_out notebook is executed by
# tests/test_pipeline_integration.py on a small real export, and Spark's results are checked by the
# Spark tests (standalone cluster == local mode, cluster metrics == ranking.metrics). Running it
# on the embedded data here would add ~2 minutes (~4 with its nbval re-run) to `make test`,
# which must stay under 20 on 2 cores.
NBVAL_SKIP := $(if $(NBVAL_ALL),,06_scale_out)
nbval: $(STAMP) ## run the pipeline (01-05; NBVAL_ALL=1: all), re-run the executed notebooks under nbval, compare the checked outputs
	$(BIN)/recsys-pipeline --params $(PARAMS) $(if $(NBVAL_SKIP),--skip $(NBVAL_SKIP))
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider -o testpaths= $(if $(NBVAL_SKIP),--ignore=outputs/notebooks/$(NBVAL_SKIP).ipynb) outputs/notebooks

lab: $(STAMP) ## start JupyterLab on the project environment
	$(BIN)/jupyter lab --notebook-dir=notebooks

serve: $(STAMP) ## serve the REST API (HOST=127.0.0.1 PORT=8000)
	$(BIN)/recsys-serve --host $(HOST) --port $(PORT)

openapi-snapshot: $(STAMP) ## after a deliberate API change: rewrite tests/openapi_snapshot.json
	$(BIN)/recsys-serve --openapi > tests/openapi_snapshot.json.tmp
	mv tests/openapi_snapshot.json.tmp tests/openapi_snapshot.json

demo: $(STAMP) ## start the Gradio demo
	$(BIN)/recsys-demo

retrain: $(STAMP) ## append new ratings; retrain if the policy says so (FORCE=1: always; RETUNE=1: choose the parameters again), promote if not worse: make retrain NEW=path.csv
	$(BIN)/recsys-retrain --new-ratings $(NEW) $(if $(FORCE),--force) $(if $(RETUNE),--retune)

holdback: $(STAMP) ## retrain demo: newest ratings (the newest 2%, or from QUARTER=2016Q3) -> data/raw/new_ratings_YYYYMMDD_YYYYMMDD.csv
	$(BIN)/recsys-retrain --hold-back $(QUARTER)

EXAMPLE ?= data/example
example: $(STAMP) ## write the example raw folder built from MovieLens (EXAMPLE=data/example) and check it
	$(BIN)/recsys-clean --example $(EXAMPLE)
	$(BIN)/recsys-clean --check $(EXAMPLE)

# Data and model versions on the DVC remote (recsys_utils/lifecycle/versioning.py).
.PHONY: pull push ct remote
pull: $(STAMP) ## fetch the store and the registry the *.dvc files name from the DVC remote
	$(BIN)/recsys-ct pull

push: $(STAMP) ## version the store and the registry with DVC, upload them; commit the *.dvc files
	$(BIN)/recsys-ct push

ct: $(STAMP) ## continuous training: pull, retrain with NEW, push if changed: make ct NEW=path.csv [RETUNE=1]
	$(BIN)/recsys-ct run --new-ratings $(NEW) $(if $(RETUNE),--retune)

remote: $(STAMP) ## show the DVC remote, or set the team's: make remote URL=gs://bucket/path
	$(BIN)/recsys-ct remote $(URL)

bench: $(STAMP) ## print the benchmark figures (accuracy, ranking, latency, API load)
	$(BIN)/python benchmarks/bench_accuracy.py
	$(BIN)/python benchmarks/bench_ranking.py
	$(BIN)/python benchmarks/bench_load.py

ranking-variants: $(STAMP) ## rerun the ranking variants tried beyond the tuned rivals (validation and test NDCG)
	$(BIN)/python benchmarks/ranking_variants.py

bench-load: $(STAMP) ## load-test the API on loopback (2,000 requests, 16 concurrent) against the first version's way
	$(BIN)/python benchmarks/bench_load.py

bench-rerank: $(STAMP) ## what the learned re-ranker costs vs data size (synthetic): make bench-rerank SIZES=0.1M,1M
	$(BIN)/python benchmarks/bench_rerank.py --sizes $(SIZES)

# Synthetic scale data fitted to the processed tables (labelled SYNTHETIC in OUT).
RATINGS ?= 1M
SEED    ?= 42
OUT     ?= data/synthetic/$(RATINGS)
.PHONY: generate bench-scale
generate: $(STAMP) ## synthetic ratings in the raw layout: make generate RATINGS=1M [USERS= TITLES= SEED= OUT=]
	$(BIN)/recsys-generate --ratings $(RATINGS) --seed $(SEED) --out $(OUT) \
		$(if $(USERS),--users $(USERS)) $(if $(TITLES),--titles $(TITLES))

SIZES ?= 0.1M,1M
bench-scale: $(STAMP) ## cost of every stage vs data size on synthetic data: make bench-scale SIZES=0.1M,1M [PRESET=]
	$(BIN)/python benchmarks/bench_scale.py --sizes $(SIZES) $(if $(PRESET),--preset $(PRESET))

screenshot: $(STAMP) ## open the demo once in headless Chromium; PNGs in outputs/reports/
	$(BIN)/python benchmarks/demo_screenshot.py

docker-lint: $(STAMP) ## lint the Dockerfile with hadolint (no Docker engine needed)
	$(BIN)/hadolint Dockerfile

screenshots: ## headless-Chromium screenshots of the built book (outputs/screenshots/)
	$(BIN)/python benchmarks/screenshot_book.py

package-map: $(STAMP) ## regenerate the README's package map from the modules' docstrings
	$(BIN)/python -m recsys_utils.run.package_map --write

# data/raw (the user's inputs and hold-back files) and data/history (ratings that retraining
# accepted) are inputs, not results: never removed here
clean: ## remove what the pipeline generates: processed data, outputs, the book (keeps data/raw, data/history, .venv)
	rm -rf _build outputs/notebooks outputs/figures outputs/models outputs/reports \
		outputs/screenshots outputs/scale_out data/synthetic data/example
	find data/interim data/processed -mindepth 1 ! -name README.md -delete
