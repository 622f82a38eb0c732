"""Tests for akp.projection.warmup."""
from __future__ import annotations

from akp import projection as P


def test_warm_up_is_idempotent_and_thread_safe() -> None:
    assert P.is_warm()
    assert P.warm_up_status()["state"] == "done"
    assert P.warm_up() == 0.0
    thread = P.start_warm_up()
    assert thread is P.start_warm_up()  # once per process
    assert thread.daemon
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert P.is_warm()
