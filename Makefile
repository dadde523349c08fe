# The two commands: `make demo` (the main job on the bundled sample) and `make test` (the whole suite, headless).
# Each sets up everything on a fresh machine first: system packages for Xvfb/OpenGL, a virtual environment, the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out/demo
SAMPLE := src/napari_karyo/samples/mfish_V26_dapi.tif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint setup system-packages clean

demo: setup
	$(BIN)/napari-karyo analyze $(SAMPLE) --out $(OUT) --overwrite --report
	@echo "results: $(OUT)/$$(basename $(SAMPLE) .tif)/ (annotations.json, instances.tif, karyotype.json, karyogram.png, report.pdf, measurements.csv)"

# napari tests run in a process of their own, as in a user's napari session: torch is first imported after the
# canvas exists (the order that once crashed, see _napari/common/torch_guard.py), not hidden by earlier core tests.
test: setup system-packages lint
	$(BIN)/python -m pytest -q tests/core tests/test_architecture.py
	xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python -m pytest -q tests/napari

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

setup: $(VENV)/.installed

# torch: a plain requirement resolves the registry's regular (CUDA) build, which also runs on CPUs;
# pinning an old torch would pull a CPU-only wheel whose torchvision ops are missing (docs/architecture.md, "Installing torch").
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -c "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)"
	touch $@

system-packages:
	@command -v xvfb-run >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0 ] || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$(cat scripts/apt-packages.txt))

clean:
	rm -rf $(VENV) out
