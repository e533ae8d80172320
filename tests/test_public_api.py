"""The public API is exactly what __all__ says, and all of it imports."""

from __future__ import annotations

import dialoop


def test_all_names_exist_and_nothing_private_is_exported() -> None:
    assert sorted(dialoop.__all__) == sorted(set(dialoop.__all__))
    for name in dialoop.__all__:
        assert hasattr(dialoop, name), name
        assert not name.startswith("_")
    assert {"open_assistant", "Assistant", "DialoopError", "GenerationParams"} <= set(dialoop.__all__)


def test_every_error_is_a_dialoop_error() -> None:
    import dialoop.errors as errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DialoopError)
