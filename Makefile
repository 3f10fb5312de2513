# angio3d: the two commands a fresh machine needs (see README):
#   make study   set up, run the whole CPU-sized study with papermill, build the HTML book
#   make test    set up, lint (ruff), run the whole test suite (unit, slow, notebooks with nbval, book build)
PY := .venv/bin/python
PROFILE ?= cpu
export VTK_DEFAULT_OPENGL_WINDOW := vtkEGLRenderWindow
export PYTHONUNBUFFERED := 1

.PHONY: study test setup setup-browser book bench clean
# make study RETRAIN=1: first retrain every zoo recipe from scratch and publish the new weights
RETRAIN ?= 0
study: setup
	if [ "$(RETRAIN)" = 1 ]; then $(PY) -m angio zoo retrain; fi
	$(PY) -m angio.study run --profile $(PROFILE)
	$(PY) -m angio.study book

test: setup-browser
	$(PY) -m ruff check angio tests benchmarks scripts
	$(PY) -m pytest -m "slow or not slow" --durations=30 tests

setup:
	scripts/setup.sh

setup-browser:
	scripts/setup.sh --browser

book: setup
	$(PY) -m angio.study book

bench: setup
	$(PY) benchmarks/bench_projection.py --json benchmarks/results/projection.json
	$(PY) benchmarks/bench_training.py --json benchmarks/results/training.json

clean:
	rm -rf _build results
