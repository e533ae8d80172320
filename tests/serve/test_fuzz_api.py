"""Schema-driven fuzzing of the whole HTTP API: no input may give a 5xx.

Schemathesis reads the server's own /openapi.json and sends, for every operation,
requests generated from (and just outside) its schema: odd strings, huge integers,
missing fields, wrong types. The server is real (uvicorn on loopback, the real
store); only the model is scripted, since no check here depends on what it says.
The run is derandomized (a fixed seed per operation) and small, so it is
repeatable and takes about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.serve import create_app
from dialoop.serve.server import background_server
from tests.fakes import ScriptedEngine

pytestmark = pytest.mark.slow

# Starting a consolidation run trains a model: far too slow for a fuzz loop, and its
# input is a bare POST with no body, tested in tests/integration/test_serve_learning.py.
_SLOW_OPERATIONS = ["/api/learning/run"]
_EXAMPLES = 25  # per operation and mode (valid and invalid input)
_TIMEOUT = 30  # seconds; a loaded 2-core machine answers any of these in well under that


@pytest.fixture(scope="module")
def admin_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    home = tmp_path_factory.mktemp("fuzz-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("DIALOOP_HOME", str(home))
    engine = ScriptedEngine(lambda prompt, adapter: "A short scripted answer.")
    with open_assistant(load_settings(home=home), engine=engine) as bot:
        _, key = bot.parts.accounts.add_key("root", role="admin")
        bot.parts.learning.memory.embedder.embed(["warm up"])  # loads the model (seconds)
        app = create_app(bot, keys_required=True)
        with background_server(app) as server:
            yield server.url, key
    mp.undo()


def test_no_input_gives_a_server_error(admin_key: tuple[str, str]) -> None:
    url, key = admin_key
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path=_SLOW_OPERATIONS)
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # the whole API is fuzzed, not a fraction of it
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, headers, failures)
            except Unsatisfiable:  # no invalid input exists for an operation taking none
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert not failures, "\n".join(failures[:20])


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str],  # type: ignore[no-untyped-def]
          failures: list[str]) -> None:
    """Send ``_EXAMPLES`` generated requests to ``operation``; note each 5xx or time-out."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=_EXAMPLES, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck), database=None)
    def call(case) -> None:  # type: ignore[no-untyped-def]
        try:
            status = case.call(headers=headers, timeout=_TIMEOUT).status_code
        except requests.Timeout:
            status = None
        if status is None or status >= 500:
            failures.append(f"{operation.label} -> {status or 'no answer in time'}: "
                            f"{case.as_curl_command(headers=headers)}")

    call()
