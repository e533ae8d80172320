"""Hot-swapping adapter versions (and stacks of their parts) while answers are generated on
other threads."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from dialoop.engine.adapters import (
    LoadedAdapters,
    line_of,
    split_part,
    stack_key,
    stack_parts,
    version_of,
)
from dialoop.errors import InvalidInputError, NotFoundError
from tests.fakes import FakeEngine


def slots(engine: FakeEngine) -> LoadedAdapters:
    return LoadedAdapters(engine, locate=lambda key: Path(f"/adapters/{key}.gguf"))


def test_a_new_version_replaces_the_old_one_once_nobody_uses_it() -> None:
    engine = FakeEngine()
    loaded = slots(engine)
    with loaded.use("global@v1") as key:
        assert key == "global@v1" and engine.adapters == {"global@v1": Path(
            "/adapters/global@v1.gguf")}
        with loaded.use("global@v2"):  # promoted while v1 is still generating
            assert set(engine.adapters) == {"global@v1", "global@v2"}
        assert "global@v1" in engine.adapters  # still in use: not unloaded under its feet
    assert set(engine.adapters) == {"global@v2"}  # v1's last user finished: gone
    with loaded.use("user:ann@v1"):  # another line is not a replacement
        assert set(engine.adapters) == {"global@v2", "user:ann@v1"}
    with loaded.use(None) as key:
        assert key is None
    assert engine.events == [("load", "global@v1"), ("load", "global@v2"),
                             ("unload", "global@v1"), ("load", "user:ann@v1")]


def test_concurrent_answers_during_promotions_never_lose_their_adapter() -> None:
    engine = FakeEngine()
    loaded = slots(engine)
    head = {"version": 1}  # what a request reads as the serving version
    problems: list[str] = []

    def answer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            with loaded.use(f"global@v{head['version']}") as key:
                for _ in range(3):  # "generating": the adapter must stay loaded throughout
                    if key not in engine.adapters:
                        problems.append(f"{key} was unloaded while in use")
                    time.sleep(rng.random() * 1e-4)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for version in range(2, 30):  # promotions while answers run
        head["version"] = version
        time.sleep(2e-3)
    for t in threads:
        t.join()
    assert problems == []
    assert all(loaded.in_use(k) == 0 for k in loaded.loaded)
    assert len(engine.adapters) == 1  # the versions the last one replaced are all unloaded
    loads = {name for event, name in engine.events if event == "load"}
    assert len(loads) > 1  # the promotions were picked up


# -- stacks: a version's lessons adapter and its style adapter, applied together ----------


def test_stack_syntax_is_sorted_unique_and_one_version_per_line() -> None:
    assert stack_parts("user:ann@v3#style+user:ann@v3") == ("user:ann@v3", "user:ann@v3#style")
    assert stack_key(["b@v1", "a@v2", "b@v1"]) == "a@v2+b@v1"
    assert stack_parts("global@v2") == ("global@v2",)
    assert split_part("user:ann@v3#style") == ("user:ann@v3", "style")
    assert split_part("global@v2") == ("global@v2", None)
    assert (line_of("user:ann@v3#style"), version_of("user:ann@v3#style")) == (
        "user:ann", "user:ann@v3")
    with pytest.raises(InvalidInputError, match="two versions of 'global'"):
        stack_parts("global@v2+global@v3#style")
    with pytest.raises(InvalidInputError, match="joined with '\\+'"):
        stack_parts("global@v2+")
    with pytest.raises(InvalidInputError, match="after '#'"):
        split_part("global@v2#")


def test_parts_of_a_stack_are_counted_and_retired_per_version() -> None:
    engine = FakeEngine()
    loaded = slots(engine)
    routed, plain = "user:ann@v3+user:ann@v3#style", "user:ann@v3#style"
    with loaded.use(routed) as key:  # a message the router sends to a lesson
        assert key == routed
        assert set(engine.adapters) == {"user:ann@v3", "user:ann@v3#style"}
        assert engine.adapters["user:ann@v3#style"] == Path("/adapters/user:ann@v3#style.gguf")
        with loaded.use(plain) as key2:  # another message of ann's: the style part alone
            assert key2 == plain and loaded.in_use("user:ann@v3#style") == 2
        # one version's parts do not replace each other
        assert set(engine.adapters) == {"user:ann@v3", "user:ann@v3#style"}
        assert loaded.in_use("user:ann@v3#style") == 1 and loaded.in_use("user:ann@v3") == 1
        with loaded.use("user:ann@v4#style+global@v1"):  # v4 promoted meanwhile
            assert {"user:ann@v3", "user:ann@v3#style"} <= set(engine.adapters)  # still used
        assert set(engine.adapters) == {"user:ann@v3", "user:ann@v3#style",
                                        "user:ann@v4#style", "global@v1"}
    assert set(engine.adapters) == {"user:ann@v4#style", "global@v1"}  # v3's parts retired
    assert [e for e in engine.events if e[0] == "unload"] == [
        ("unload", "user:ann@v3"), ("unload", "user:ann@v3#style")]
    assert all(loaded.in_use(p) == 0 for p in loaded.loaded)


def test_a_stack_loads_nothing_if_a_part_cannot_be_located() -> None:
    engine = FakeEngine()

    def locate(part: str) -> Path:
        if part.endswith("#style"):
            raise NotFoundError(f"No adapter {part}")
        return Path(f"/adapters/{part}.gguf")

    loaded = LoadedAdapters(engine, locate)
    with pytest.raises(NotFoundError), loaded.use("user:ann@v3+user:ann@v3#style"):
        pass
    assert engine.adapters == {} and loaded.loaded == []
    assert engine.events == [("load", "user:ann@v3"), ("unload", "user:ann@v3")]
