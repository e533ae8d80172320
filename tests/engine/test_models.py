"""Model specs resolve to files, or fail with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf, resolve_model
from dialoop.errors import ModelLoadError, ModelNotFoundError


def test_default_is_the_bundled_gguf(tmp_path: Path) -> None:
    source = resolve_model("default", home=tmp_path)
    assert source.name == DEFAULT_MODEL_NAME
    assert source.gguf == bundled_gguf()
    assert source.gguf.read_bytes()[:4] == b"GGUF"


def test_a_gguf_path_and_a_folder_holding_one(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "tiny.gguf").symlink_to(bundled_gguf())
    assert resolve_model(str(folder / "tiny.gguf"), home=tmp_path).name == "tiny"
    assert resolve_model(str(folder), home=tmp_path).gguf == (folder / "tiny.gguf").resolve()


def test_an_hf_folder(tmp_path: Path) -> None:
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    source = resolve_model(str(tmp_path / "hf"), home=tmp_path)
    assert source.folder == (tmp_path / "hf").resolve() and source.gguf is None
    with pytest.raises(Exception, match="needs a GGUF file"):
        source.require_gguf()


def test_missing_file_and_non_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="No model file at"):
        resolve_model(str(tmp_path / "nope.gguf"), home=tmp_path)
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a GGUF model file"):
        resolve_model(str(bad), home=tmp_path)


def test_hub_id_offline_says_how_to_get_it(tmp_path: Path) -> None:
    # conftest sets HF_HUB_OFFLINE=1, as on a machine without network
    with pytest.raises(ModelNotFoundError, match="hf download org/some-model --local-dir"):
        resolve_model("org/some-model", home=tmp_path)


def test_nonsense_spec_lists_the_accepted_forms(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="give 'default', a .gguf file"):
        resolve_model("what is this", home=tmp_path)
