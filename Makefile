# One command installs everything, one runs the tests. Use inside a virtual environment:
#   python3 -m venv .venv && . .venv/bin/activate && make install && make test
PYTHON ?= python3
PIP = $(PYTHON) -m pip
RASA_SDK_VENV ?= .venv-rasa-sdk

# llama-cpp-python has no Linux wheel on PyPI, so pip compiles llama.cpp from its sdist.
# Build only what dialoop loads (libllama and ggml): the sdist's CMakeLists takes
# LLAVA_BUILD=OFF (no multimodal library: dialoop does not use llava/mtmd), but forces
# llama.cpp's "common" library on, so this CMake file, included right after llama.cpp's
# project(), does the rest:
#   LLAMA_BUILD_COMMON OFF  the CLI helpers (argument parsing, HTTP client, chat parsers),
#                           built by default and never loaded by the llama_cpp package
#   -mno-amx-*              no AMX kernels: -march=native enables them where the CPU lists
#                           AMX, and on VMs that list it without enabling its tile state the
#                           first matrix product dies (general protection fault in ldtilecfg)
# Measured times are in README.md. CMAKE_ARGS of your own (e.g. -DGGML_CUDA=on) are kept.
define LLAMA_CMAKE
set(LLAMA_BUILD_COMMON OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$$")
  add_compile_options(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
endif()
endef
export LLAMA_CMAKE

.PHONY: install system-packages test lint bench

install: system-packages
	# torch first, pinned to the CPU build on this machine: anything that later asks for
	# torch finds it satisfied instead of pulling CUDA wheels.
	$(PIP) install torch==2.13.0
	cmake_include=$$(mktemp --suffix=.cmake) && printf '%s\n' "$$LLAMA_CMAKE" > "$$cmake_include" && \
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$$cmake_include $${CMAKE_ARGS:-}" \
		$(PIP) install -e '.[dev,postgres]'; \
	status=$$?; rm -f "$$cmake_include"; exit $$status
	# Rasa's action server (rasa-sdk) in an environment of its own, as a Rasa project runs
	# it beside the assistant: it pins older pydantic and websockets than dialoop's. The
	# tests start it on loopback (tests/interop/test_rasa_sdk.py).
	test -x $(RASA_SDK_VENV)/bin/python || $(PYTHON) -m venv $(RASA_SDK_VENV)
	$(RASA_SDK_VENV)/bin/python -m pip install -q rasa-sdk==3.21.1
	timeout 900 $(PYTHON) -m dialoop models --bench || echo "make install: measuring the weight formats failed (above); dialoop serves the bundled file as it is: run 'dialoop models --bench' later." >&2

# What the tests need from Debian: Chromium for the real-browser tests, PostgreSQL's own
# binaries for the PostgreSQL tests (tests/postgres.py); for speech and images (dialoop.media)
# espeak-ng and flite (two speech engines), Tesseract with its English model, ffmpeg
# (mp3/opus output) and the DejaVu fonts the tests and benchmarks draw text with. apt runs
# only when one is missing.
system-packages:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v flite >/dev/null 2>&1 || missing="$$missing flite"; \
	command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr"; \
	test -f /usr/share/tesseract-ocr/5/tessdata/eng.traineddata || missing="$$missing tesseract-ocr-eng"; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || missing="$$missing fonts-dejavu-core"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "make install: the tests need the Debian packages$$missing;" \
	          "install them as root (apt-get install$$missing) and run make install again." >&2; \
	     exit 1; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	     echo "make install: no apt-get here; install$$missing (Chromium at /usr/bin/chromium," \
	          "PostgreSQL's initdb under /usr/lib/postgresql) and run make install again." >&2; \
	     exit 1; fi; \
	echo "Installing Debian packages:$$missing"; \
	$$sudo apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

test:
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check src tests benchmarks

bench:
	$(PYTHON) benchmarks/bench_decode.py
	$(PYTHON) benchmarks/bench_multiturn.py
