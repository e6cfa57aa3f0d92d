# The README's two commands:
#   make book   install, execute every chapter, render the book to _build/html
#   make test   install, run the unit tests and every chapter under nbval (QUICK mode), render the book
# Both create the virtual environment .venv in the repository on first use.
PYTHON ?= python3
VENV := .venv
ARGS ?=
# SYSTEM=1: use the machine's own python as it is (a GPU runner or Colab, with its CUDA torch): no
# virtual environment, only the requirements it lacks are installed (never torch), from BUNDLE (a folder
# made by `make bundle`: wheels and MNIST) when the machine is offline.
SYSTEM ?= 0
BUNDLE ?=
ifeq ($(SYSTEM),1)
PY := $(PYTHON)
SETUP_STAMP := _build/.system-installed
else
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.installed
endif
SHARED_MNIST ?= $(if $(BUNDLE),$(BUNDLE)/mnist,../shared/data/mnist)

export DETTMERS_BOOK_DATA ?= $(CURDIR)/.data
export BOOK_LEDGER_DIR := $(CURDIR)/_build/ledgers
export PYTHONHASHSEED := 0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: book test setup data unit notebooks html clean bundle

setup: $(SETUP_STAMP)

_build/.system-installed: requirements.txt pyproject.toml
	$(PY) .ci/install_missing.py $(if $(BUNDLE),--bundle "$(BUNDLE)")
	mkdir -p _build && touch $@

# Wheels of every requirement but torch, and the MNIST files, for an offline GPU machine (SYSTEM=1 BUNDLE=...).
bundle:
	$(PYTHON) .ci/install_missing.py --make-bundle _build/bundle

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# MNIST into the cache: from a local copy when there is one (CI, offline machines), else downloaded.
data: setup
	@if [ -d "$(SHARED_MNIST)" ]; then $(PY) -m book data --seed "$(SHARED_MNIST)"; else $(PY) -m book data; fi

book: setup data
	$(PY) -m book build $(ARGS)

# One pytest run: the unit tests, then every committed notebook executed once (QUICK, its defaults)
# and compared with its committed outputs. Then the book is rendered from the committed pages
# (full-mode runs in results/ where there are, else the notebooks just verified) without executing
# anything a second time, and the rendered pages are checked as a reader would.
# The nbval comparison is chosen by the machine (book.core.numerics.comparison): `exact` on x86-64
# under the numerics profile, `device` elsewhere (masks the ‹ › numbers too); BOOK_COMPARISON forces one.
COMPARISON = $(shell $(PY) -c "import book.core.numerics as n; print(n.comparison())" 2>/dev/null || echo exact)
SANITIZE = $(if $(filter device,$(COMPARISON)),tests/nbval_device.cfg,tests/nbval_sanitize.cfg)

test: setup data
	@echo "make test: nbval comparison '$(COMPARISON)' ($(SANITIZE)); numerics: $$($(PY) -c 'import book, torch; import book.core.numerics as n; s = n.status(); print(s["profile"], "in force" if s["in_force"] else "NOT in force", "- MKL branch", s.get("mkl_cnr"), "(each notebook: exact where it was made in this bits family, see pytest header)")')"
	rm -rf "$(BOOK_LEDGER_DIR)"
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env --nbval-cell-timeout=1200 \
		--nbval-sanitize-with $(SANITIZE) -p no:cacheprovider --durations=12
	$(PY) -m book build --no-execute
	$(MAKE) check-html

clean:
	rm -rf _build scoreboard.md status.md

.PHONY: test-gpu check-html

# On a CUDA machine: every chapter QUICK and full on the GPU, every verdict compared with the
# committed ones (notebooks/, results/); report and GPU ledgers in _build/gpu. Refuses on a CPU.
test-gpu: setup data
	$(PY) -m book gpu-check $(ARGS)

# The reader's checks on the rendered book in _build/html (build it first: make book, or
# `python -m book build --no-execute`): no prose typeset as math, no tracebacks, links and images
# resolve, local MathJax, each chapter ends with its ledger, the scoreboard agrees with the pages.
check-html: setup
	BOOK_HTML_DIR="$(CURDIR)/_build/html" $(PY) -m pytest tests/test_rendered.py -p no:cacheprovider -q

.PHONY: pdf linkcheck

# The whole book as one PDF, _build/html/dettmers-book.pdf (linked from the landing page): headless
# Chromium prints every page of the table of contents, pypdf joins them behind a cover with the
# contents, one bookmark per page and section. Renders the committed pages first if nothing is built.
pdf: setup
	@[ -f _build/html/index.html ] || $(PY) -m book build --no-execute
	$(PY) -m book.tools.pdf

# Every external link of the rendered book and of the data files' source columns; the report is
# _build/linkcheck.md, and the command fails when a link is dead (linkcheck.yml runs it weekly).
linkcheck: setup
	@[ -f _build/html/index.html ] || $(PY) -m book build --no-execute
	$(PY) -m book.tools.linkcheck

.PHONY: test-full

# The pages readers read, re-executed: every chapter in full mode (ARGS: chapters), each ledger held
# to the committed evidence in results/ (exact where the numerics profile holds, by verdict family for
# timed rows), after every stored page is checked against its notebook and its manifest. Report in
# _build/full/report.md; exit 1 on any difference. Scheduled weekly by .github/workflows/full.yml.
# Then a committed 100-epoch sparse run re-trained bit for bit (CI re-trains a 20-epoch one).
test-full: setup data
	$(PY) -m book full-check $(ARGS)
	BOOK_SLOW_TESTS=1 $(PY) -m pytest tests/test_sparse.py -k reproduced_exactly -p no:cacheprovider -q
