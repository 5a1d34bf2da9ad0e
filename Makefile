# The README's contract: `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Extra pip arguments for torch; users elsewhere can point these at PyTorch's CPU wheel index.
TORCH_PIP_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8080
SERVE_ARGS ?=

.PHONY: setup serve test check bench lint clean test-data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: argostranslate pulls in stanza, which needs torch; otherwise pip picks a CUDA build.
	$(PIP) install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

# axe-core for the browser accessibility tests only (the web client itself has no npm dependencies).
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: setup
	$(VENV)/bin/peerwell serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

# Real human speech for tests and bench.captions (recordings inside the moonshine-voice 0.1.5 wheel),
# fetched with pip once into the test-data cache; the suite itself runs without network.
test-data: setup
	$(PY) -m tests.support.real_speech

# The suite runs in a private network namespace with only loopback up: browsers and WebRTC tests can
# reach nothing but 127.0.0.1 (needs root or unprivileged user namespaces, as on CI).
PYTEST_ARGS ?=
test: setup node_modules/.installed test-data
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	unshare -n sh -c 'ip link set lo up && exec sh tests/lanes.sh $(PY) $(PYTEST_ARGS)'

# The edit-test loop: lint, the import contract, and every test that needs neither a browser, a model nor a
# network topology, four at a time (most of them wait on real-time media, not on the CPU).
check: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m pytest -p no:cacheprovider -q -n 4 -m "not (browser or model or topology)" $(PYTEST_ARGS)'

bench: setup test-data
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --participants 16 --no-captions'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --participants 16'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --scenario all-talk --participants 12'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --scenario all-talk --participants 6 --baseline'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --scenario all-talk --participants 6 --baseline --fixed-video'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --scenario simulcast --participants 8 --client-processes 3'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.sfu --workers 2'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.captions'
	$(PY) -m bench.translate
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.churn'
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.abuse'

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV)
