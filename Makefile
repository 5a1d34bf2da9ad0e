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

.PHONY: setup serve test check bench lint clean test-data web-assets

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: argostranslate pulls in stanza, which needs torch; otherwise pip picks a CUDA build.
	$(PIP) install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

# axe-core and puppeteer-core for the browser tests; onnxruntime-web and llama-tokenizer-js are copied into
# web/static/e2ee/vendor/ for captions made in the browser (web-assets below).
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# End-to-end encrypted rooms caption in the browser (docs/architecture.md): peerwell serves onnxruntime-web, the
# tokenizer and Moonshine tiny itself (no CDN), copied here at setup time and kept out of git (.gitignore).
# @moonshine-ai/moonshine-js declares a dependency that does not resolve (vad-web: file:...), so it is not in
# package.json: `npm pack` fetches its tarball alone (checked against its sha256) and only the model files are taken.
# The crisis phrase rules go to the facilitators' browsers as data, exported from safety/phrases.
E2EE_VENDOR := web/static/e2ee/vendor
MOONSHINE_TGZ := .cache/npm/moonshine-ai-moonshine-js-0.1.29.tgz
MOONSHINE_SHA256 := 864e17a00ed494857c71693e835306fa038e0f82002c76e3056d67d574e1c2d8

$(MOONSHINE_TGZ):
	mkdir -p $(@D)
	cd $(@D) && npm pack --silent @moonshine-ai/moonshine-js@0.1.29 >/dev/null
	echo "$(MOONSHINE_SHA256)  $@" | sha256sum -c --quiet

$(E2EE_VENDOR)/.installed: node_modules/.installed $(MOONSHINE_TGZ) $(wildcard safety/phrases/*.toml) safety/export.py
	mkdir -p $(E2EE_VENDOR)/moonshine-tiny
	cp node_modules/onnxruntime-web/dist/ort.wasm.min.mjs node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
	   node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm node_modules/llama-tokenizer-js/llama-tokenizer.js \
	   $(E2EE_VENDOR)/
	tar -xzf $(MOONSHINE_TGZ) -C $(E2EE_VENDOR)/moonshine-tiny --strip-components=5 \
	   package/dist/model/tiny/quantized/encoder_model.onnx package/dist/model/tiny/quantized/decoder_model_merged.onnx
	$(PY) -m safety.export $(E2EE_VENDOR)/phrases.json
	touch $@

web-assets: setup $(E2EE_VENDOR)/.installed

serve: setup web-assets
	$(VENV)/bin/peerwell serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

# Real human speech for tests and bench.captions (recordings inside the moonshine-voice 0.1.5 wheel),
# fetched with pip once into the test-data cache; the suite itself runs without network.
test-data: setup
	$(PY) -m tests.support.real_speech

# The suite runs in a private network namespace with only loopback up: browsers and WebRTC tests can
# reach nothing but 127.0.0.1 (needs root or unprivileged user namespaces, as on CI).
PYTEST_ARGS ?=
test: setup node_modules/.installed test-data web-assets
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	unshare -n sh -c 'ip link set lo up && exec sh tests/lanes.sh $(PY) $(PYTEST_ARGS)'

# The edit-test loop: lint, the import contract, and every test that needs neither a browser, a model nor a
# network topology, four at a time (most of them wait on real-time media, not on the CPU).
check: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m pytest -p no:cacheprovider -q -n 4 -m "not (browser or model or topology)" $(PYTEST_ARGS)'

bench: setup test-data web-assets
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
	unshare -n sh -c 'ip link set lo up && exec $(PY) -m bench.e2ee'

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV)
