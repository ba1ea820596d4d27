# The two README commands.  `make demo` and `make test` set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := .stamps
# CPU build unless a CUDA GPU is present (pip picks a CUDA build there).
TORCH := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
APT_PKGS := xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 \
	libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-cursor0 \
	libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 libfontconfig1

.PHONY: demo test lint bench docs release-check system venv install clean

demo: install system
	@if [ -n "$$DISPLAY" ]; then $(PY) -m napari_weakseg._qt.demo; \
	else echo "No display: running the demo under Xvfb."; \
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m napari_weakseg._qt.demo --headless; fi

test: install system
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PIP) install -q --no-deps -e . && $(VENV)/bin/npe2 validate napari-weakseg
	$(PIP) install -q --no-deps --force-reinstall . && $(VENV)/bin/npe2 validate napari-weakseg
	$(MAKE) --no-print-directory docs release-check
	$(PY) -m pytest -q

# The user documentation (docs/, mkdocs.yml); warnings fail the build.
docs: $(STAMP)/deps
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 \
	  $(VENV)/bin/mkdocs build --strict --quiet

# sdist + wheel, twine check, the wheel in a new venv with napari:
# npe2 validate, weakseg --help, plugin menu, sample, dock.
release-check: $(STAMP)/deps system
	PY=$(PY) tools/release_check.sh

bench: install
	$(PY) benchmarks/bench_sparse.py

system: $(STAMP)/system
$(STAMP)/system:
	@mkdir -p $(STAMP)
	@if dpkg -s $(APT_PKGS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS)) >/dev/null; \
	else echo "Please run: sudo apt-get install -y $(APT_PKGS)"; exit 1; fi
	@touch $@

venv: $(STAMP)/venv
$(STAMP)/venv:
	@mkdir -p $(STAMP)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	@touch $@

# Dependencies once (re-run when pyproject changes); the package itself is
# reinstalled non-editable every time, so tests see what a user installs.
install: $(STAMP)/deps
	$(PIP) install -q --no-deps --force-reinstall .
$(STAMP)/deps: pyproject.toml $(STAMP)/venv
	$(PIP) install -q ".[dev]"
	@touch $@

clean:
	rm -rf $(VENV) $(STAMP) build dist site
