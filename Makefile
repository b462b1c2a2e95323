# Fresh machine: `make demo` (install + the demo) or `make test` (install + the tests).
# The venv is built once; `make clean` removes it. PYTHON picks the interpreter (>= 3.11).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system-deps demo test lint docs fuzz bench bench-gpu bench-quality clean

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
	# TorchCodec (ingest --decoder torchcodec) must match torch: torch 2.N <-> torchcodec 0.N
	$(PY) -m pip install -q --disable-pip-version-check "torchcodec==0.$$($(PY) -c \
		'import torch; print(torch.__version__.split(".")[1])').*" || \
		echo "no TorchCodec release matches this torch: ingest --decoder torchcodec unavailable"
	touch $@

# Debian packages (command:package): ffmpeg and espeak-ng make the test media, chromium renders
# the HTML report and drives the explorer's browser test (with chromium-driver).
# Installed when missing (root or sudo); CI's clean machine gets them here.
DEBS := ffmpeg:ffmpeg espeak-ng:espeak-ng chromium:chromium chromedriver:chromium-driver
system-deps:
	@missing=""; for cp in $(DEBS); do c=$${cp%%:*}; p=$${cp#*:}; \
		command -v $$c >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages:$$missing"; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; fi

demo: install
	$(VENV)/bin/mediafm demo --out demo_out

# Two workers (pytest-xdist) on CI's two cores, one math thread each (tests/conftest.py).
# The 296 tests on 2-core AMD EPYC hosts: 13:49 with AVX2 only (17:07 the same day before the
# slow tests were dealt first to both workers, tests/conftest.py), 7:43 with AVX-512 (294
# tests, earlier). TEST_WORKERS=0 runs them in one process. Every run lists its 15 slowest.
TEST_WORKERS ?= 2
test: install system-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# Property-based tests of the parsers with many more examples than CI runs (~10 min).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_fuzz.py

lint: install
	$(VENV)/bin/ruff check .

# docs/cli.md from the argument parser (a test fails when it is stale)
docs: install
	$(PY) -m mediafm.cli.reference > docs/cli.md

# CPU benchmarks (~1 h on 2 cores): interleaved repeats, medians with ranges; each writes
# benchmarks/results/NAME.json and benchmarks/README.md's tables are regenerated from those.
bench: install system-deps
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/loader_throughput.py
	$(PY) benchmarks/embed_throughput.py
	$(PY) benchmarks/ingest_throughput.py --minutes 2
	$(PY) benchmarks/ingest_throughput.py --minutes 2 --titles 4 --repeats 5
	$(PY) benchmarks/encoder_precision.py
	$(PY) benchmarks/search.py
	$(PY) benchmarks/search_scale.py
	$(PY) benchmarks/asr_search.py
	$(PY) benchmarks/shot_boundaries.py
	$(PY) benchmarks/scenes.py
	$(PY) benchmarks/scenes.py --families
	$(PY) benchmarks/serve_load.py
	$(PY) benchmarks/heads_fit.py
	$(PY) benchmarks/probe_speed.py
	$(PY) benchmarks/readme.py

# On a machine with a CUDA GPU: base at 512 shots with bf16 and compile, embedding, and the
# loader feeding the GPU from the fused cache (host-to-device copy included).
bench-gpu: install
	$(PY) benchmarks/train_throughput.py --config base --batch 32 --device cuda --bf16
	$(PY) benchmarks/embed_throughput.py --device cuda --bf16
	$(PY) benchmarks/loader_throughput.py --sources cache cuda --threads 1 2 4 --workers 0
	$(PY) benchmarks/ingest_throughput.py --minutes 2 --decoder torchcodec --device cuda \
		--json benchmarks/results/ingest_throughput_cuda.json
	$(PY) benchmarks/readme.py

# Does context win? presets x seeds x recipes -> probe tables, then on held-out draws of the
# catalog family, what search by example finds per readout, and how many passes the readout
# needs (~3 h on 2 cores).
bench-quality: install
	$(PY) benchmarks/context_quality.py --presets noisy,clean --seeds 0,1 \
		--recipes "spec (learned positions),tiny default,no title clock" \
		--probe-seeds 0,1
	$(PY) benchmarks/search_quality.py --presets noisy,clean --seeds 0,1
	$(PY) benchmarks/context_families.py --draws 8 --position
	$(PY) benchmarks/readout_passes.py --seeds 0
	$(PY) benchmarks/readme.py

clean:
	rm -rf $(VENV) demo_out
