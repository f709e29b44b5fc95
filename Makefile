# make demo: set up everything and render the shipped example.  make test: set up everything and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := fluidsynth fluid-soundfont-gm liblo-tools ardour
OUT ?= out

.PHONY: setup system-deps demo test bench bench-sound clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Debian packages the dataset builder, the tests and the benchmarks use (FluidSynth, a GM soundfont, liblo's
# oscsend/oscdump). Installed with apt-get when missing (root, or sudo without a password).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
	  $$sudo apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	  { echo "could not install:$$missing (need root or sudo)"; exit 1; }; \
	fi

demo: setup
	$(PY) -m engine render examples/bach_bwv66_6.mid -o $(OUT)/demo.wav --stems $(OUT)/demo-stems
	$(PY) -m engine inspect examples/bach_bwv66_6.mid --plot $(OUT)/demo.png
	@echo "demo: listen to $(OUT)/demo.wav (flute/oboe/clarinet/bassoon presets); controls plotted in $(OUT)/demo.png"

test: setup system-deps
	$(PY) -m pytest -q

bench: setup system-deps
	$(PY) bench/render_speed.py

# The sound benchmarks (docs/benchmarks.md): the presets against FluidSynth with their training soundfont and with
# MuseScore General (Debian musescore-general-soundfont, installed like system-deps does) on held-out folk melodies.
bench-sound: setup system-deps
	@dpkg -s musescore-general-soundfont >/dev/null 2>&1 || { \
	  echo "installing Debian packages: musescore-general-soundfont"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
	  $$sudo apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends musescore-general-soundfont >/dev/null || \
	  { echo "could not install: musescore-general-soundfont (need root or sudo)"; exit 1; }; }
	$(PY) bench/realism.py --json $(OUT)/bench/realism.json --plot $(OUT)/bench/plots
	$(PY) bench/playing.py --json $(OUT)/bench/playing.json --plot $(OUT)/bench/plots

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
