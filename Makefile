# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and exactly pinned: the local CPU build satisfies it, so no CUDA wheels are downloaded.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,image,cluster,ray,adapters,codecs,train,lerobot,robomimic]"
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(PY) -m launch.pipeline

# one worker per core; a file's tests stay together on one worker (they share module fixtures)
test: $(STAMP)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(PY) -m pytest -q -n auto --dist loadfile

bench: $(STAMP)
	$(PY) -m benchmarks.sampling

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
