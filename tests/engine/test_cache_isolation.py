"""The prefix (KV) cache never crosses a cache scope (the user), in every engine and the pool.

The probe of issue 12: ann's prompt holds her PIN; bob sends the same prompt with guessed
PINs. When bob could reuse ann's cached tokens, each right digit gave him one more cached
token (and a faster first token). Now what bob sees, the cached-token count and the
number of prompt tokens the engine evaluates (what the time to the first token measures),
must not depend on ann's prompt at all.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from dialoop.engine import Chunk, GenerationParams, Message, Usage
from dialoop.engine.llamacpp import LlamaCppEngine, _SavedStates
from dialoop.engine.models import DEFAULT_MODEL_NAME, ModelSource, bundled_gguf
from dialoop.serve.pool import EnginePool
from tests.fakes import FakeEngine, HashEmbedder

SHORT = GenerationParams(max_tokens=4)
STORY = " ".join(f"Line {i} of my notes about the garden, the bank and the weekend."
                 for i in range(3))  # long enough for a state worth parking (64 tokens)


def _secret(pin: str) -> list[Message]:
    return [{"role": "user", "content": f"My bank PIN is {pin}. Keep it safe. {STORY}"}]


GUESSES = ["4xxx", "48xx", "482x", "4821"]


class _Probe:
    """Runs prompts on a llama.cpp engine and notes, for each, what its caller can observe:
    the reported cached tokens and how many prompt tokens llama.cpp evaluated."""

    def __init__(self, engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self._evals: list[int] = []
        llm = engine._llm
        real_eval = llm.eval

        def counting_eval(tokens: Sequence[int]) -> None:
            self._evals.append(len(tokens))
            real_eval(tokens)

        monkeypatch.setattr(llm, "eval", counting_eval)

    def run(self, messages: list[Message], user: str) -> tuple[int, int]:
        """(cached tokens, prompt tokens evaluated) of one answer for ``user``."""
        self._evals.clear()
        chunks = list(self.engine.stream(messages, SHORT, cache_scope=user))
        usage = chunks[-1].usage
        assert usage is not None
        evaluated = self._evals[0]  # the first eval is the prompt; then one per new token
        assert evaluated == usage.prompt_tokens - usage.cached_tokens  # the count is the work
        return usage.cached_tokens, evaluated


def test_bob_cannot_guess_anns_pin_from_the_cache(
    llama_engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = _Probe(llama_engine, monkeypatch)
    probe.run(_secret("4821"), "ann")
    # Each guess is the first prompt of an attacker's account (bob may hold several keys),
    # so his own earlier guesses cannot be reused either.
    seen = [probe.run(_secret(guess), f"bob-{i}") for i, guess in enumerate(GUESSES)]
    # nothing reused, so every prompt token evaluated (_Probe checks that the count is the work)
    assert [cached for cached, _ in seen] == [0, 0, 0, 0]
    # ann's own next turn still reuses her state (parked while the others ran)
    cached, _ = probe.run(_secret("4821"), "ann")
    assert cached >= llama_engine.count_tokens(llama_engine.render(_secret("4821"))) - 1


def test_what_bob_sees_does_not_depend_on_anns_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """One bob, all his guesses, in two worlds that differ only in ann's PIN: the same."""

    def world(pin: str) -> list[tuple[int, int]]:
        engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME, context_window=512)
        try:
            with monkeypatch.context() as m:
                probe = _Probe(engine, m)
                probe.run(_secret(pin), "ann")
                seen = []
                for guess in GUESSES:
                    seen.append(probe.run(_secret(guess), "bob"))
                    probe.run(_secret(pin), "ann")  # ann keeps talking between his guesses
                return seen
        finally:
            engine.close()

    with_pin, other_pin = world("4821"), world("9037")
    assert with_pin == other_pin
    assert with_pin[-1][0] > 0  # bob does reuse his own earlier guesses


def test_saved_states_are_found_only_in_their_scope() -> None:
    states = _SavedStates(capacity_bytes=1000)
    anns = np.array([1, 2, 3, 4, 5, 6], dtype=np.intc)
    states.put(None, "ann", anns, b"ann-state")
    assert states.take_best(None, "bob", [1, 2, 3, 4, 5, 9]) is None
    assert states.take_best(None, None, [1, 2, 3, 4, 5, 9]) is None
    assert states.take_best(None, "ann", [1, 2, 3, 9], longer_than=3) is None  # kept: not better
    found = states.take_best(None, "ann", [1, 2, 3, 4, 5, 9])
    assert found is not None and found.common == 5 and found.data == b"ann-state"
    assert states.take_best(None, "ann", [1, 2, 3, 4, 5, 9]) is None  # taken out: now live


class _Recorder(FakeEngine):
    """Answers at once and notes which copy answered and with which cache scope."""

    def __init__(self, index: int, log: list[tuple[int, str | None]]) -> None:
        super().__init__()
        self.index, self.log = index, log

    def stream(self, messages: Sequence[Message], params: GenerationParams, *,
               adapter: str | None = None, cache_scope: str | None = None,
               stop: object = None) -> Iterator[Chunk]:
        self.log.append((self.index, cache_scope))
        yield Chunk("ok")
        yield Chunk("", finish_reason="stop", usage=Usage(1, 1, 0, 0.0, 0.0))


def test_pool_routes_by_what_the_users_own_prompts_share() -> None:
    log: list[tuple[int, str | None]] = []
    pool = EnginePool([_Recorder(0, log), _Recorder(1, log)])
    secret = [{"role": "user", "content": "My bank PIN is 4821, please remember it."}]
    bobs = pool.stream([{"role": "user", "content": "Hello there."}], SHORT, cache_scope="bob")
    next(bobs)  # bob holds copy 0 ...
    list(pool.stream(secret, SHORT, cache_scope="ann"))  # ... so ann's secret goes to copy 1
    list(bobs)
    guess = [{"role": "user", "content": "My bank PIN is 4821, is it?"}]
    list(pool.stream(guess, SHORT, cache_scope="bob"))
    # bob's guess shares far more with ann's prompt on copy 1, but only his own count
    assert log == [(0, "bob"), (1, "ann"), (0, "bob")]
    list(pool.stream(secret, SHORT, cache_scope="ann"))
    assert log[-1] == (1, "ann")  # and ann still finds her own copy


def test_the_intent_fallback_asks_in_the_users_scope(tmp_path: Path) -> None:
    from dialoop.dialogue.domain import load_domain
    from dialoop.dialogue.intent import IntentClassifier
    from dialoop.dialogue.manager import DialogueManager

    (tmp_path / "domain.yaml").write_text(textwrap.dedent("""\
        name: unsure
        understanding: {confidence_threshold: 1.0, llm_fallback: true}
        intents:
          greet: {examples: [hi, hello, good morning]}
          leave: {examples: [bye, goodbye, see you]}
        """))
    domain = load_domain(tmp_path / "domain.yaml")
    log: list[tuple[int, str | None]] = []
    manager = DialogueManager(domain, engine=_Recorder(0, log),
                              classifier=IntentClassifier(domain, HashEmbedder()))
    manager.plan("hello there", user="ann")  # never certain: the model is asked
    assert log == [(0, "ann")]


@pytest.mark.slow
def test_torch_engine_keeps_scopes_apart(tmp_path: Path, tiny_model_dir: Path) -> None:
    from dialoop.engine.torch import TorchEngine

    engine = TorchEngine(ModelSource(spec="tiny", name="tiny", folder=tiny_model_dir),
                         cache_dir=tmp_path)

    def cached(pin: str, user: str) -> int:
        usage = list(engine.stream(_secret(pin), SHORT, cache_scope=user))[-1].usage
        assert usage is not None
        return usage.cached_tokens

    for guess in GUESSES:
        cached("4821", "ann")  # the cache holds ann's prompt ...
        assert cached(guess, "bob") == 0  # ... and bob's guess reuses none of it
    cached("4821", "ann")
    assert cached("4821", "ann") >= engine.count_tokens(engine.render(_secret("4821"))) - 1
