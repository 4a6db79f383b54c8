"""What a test does when its engine cannot be had: under CI it fails, elsewhere it skips."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI=true (a missing engine is a broken build there), skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: engine tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_bindable(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 is free to bind now (nothing listens on it or holds it)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
