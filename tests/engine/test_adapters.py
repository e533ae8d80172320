"""Hot-swapping adapter versions while answers are generated on other threads."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from dialoop.engine.adapters import LoadedAdapters
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
