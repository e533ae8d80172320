"""Running the real ``dialoop`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def dialoop(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``dialoop ARGS`` with this test's DIALOOP_HOME; return the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "dialoop", *args],
        capture_output=True, text=True, timeout=timeout, env=os.environ.copy(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dialoop {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def dialoop_json(*args: str) -> Any:
    return json.loads(dialoop(*args).stdout)


def start(*args: str) -> subprocess.Popen[str]:
    """Start ``dialoop ARGS`` with pipes, for interactive tests."""
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "dialoop", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ.copy(), bufsize=1,
    )
