"""With ``DIALOOP_TEST_FAIL_ON_SKIP=1`` (set by ``.ci/run``) a skipped test fails the run.

On a fresh machine ``make install`` provides everything the suite needs (Chromium,
PostgreSQL, the Python extras), so a skip there means the install left something out.
The run then lists each skipped test with its reason and exits with status 1; without
the variable this plugin does nothing. Registered by ``pytest_plugins`` in conftest.py.
"""

from __future__ import annotations

import os

import pytest

ENV = "DIALOOP_TEST_FAIL_ON_SKIP"


def pytest_configure(config: pytest.Config) -> None:
    # Read once, here: conftest's autouse fixture deletes DIALOOP_* variables in each test.
    if os.environ.get(ENV, "") not in ("", "0"):
        config.pluginmanager.register(FailOnSkip(), "dialoop-fail-on-skip")


class FailOnSkip:
    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []  # (test or module, reason)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # a whole module, e.g. pytest.importorskip at import time
            self.skipped.append((report.nodeid, _reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # an expected failure (xfail) is reported as skipped, but it ran
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, _reason(report)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        if not self.skipped:
            return
        tr = terminalreporter
        tr.section(f"{ENV}: {len(self.skipped)} skipped, so the run fails", sep="=", red=True)
        for nodeid, reason in self.skipped:
            tr.line(f"SKIPPED {nodeid}: {reason}", red=True)
        tr.line("A skip here means the install left something out: see `make install`.")


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The skip message (pytest keeps it as (path, line, "Skipped: why"))."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")
