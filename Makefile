# Fresh machine: `make demo` (install + the demo) or `make test` (install + the tests).
# The venv is built once; `make clean` removes it. PYTHON picks the interpreter (>= 3.11).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system-deps demo test lint bench clean

install: $(VENV)/.installed

# torch first, pinned to the release these machines hold locally (CPU build); the package
# itself asks only torch>=2.9, so GPU users keep their own CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0" || \
		$(PY) -m pip install -q --disable-pip-version-check "torch>=2.9"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	# aisfx (the default audio encoder) pins 2022 releases: install it without its deps
	# (librosa comes with the ingest extra); without it, ingest falls back to log-mel.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps "aisfx==0.1.2" || \
		echo "aisfx could not be installed: audio falls back to log-mel statistics"
	touch $@

# Debian packages: ffmpeg and espeak-ng make the test media, chromium renders the HTML report.
# Installed when missing (root or sudo); CI's clean machine gets them here.
DEBS := ffmpeg espeak-ng chromium
system-deps:
	@missing=""; for p in $(DEBS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages:$$missing"; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; fi

demo: install
	$(VENV)/bin/mediafm demo --out demo_out

test: install system-deps
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) demo_out
