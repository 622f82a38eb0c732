"""The queue counters across the hand-over between two runs: no "Running 0" flash while runs wait."""
from __future__ import annotations

from ui.jobs import bridge_handover


def test_handover_between_runs_keeps_the_running_count_then_lets_go() -> None:
    home = "/tmp/akp-counts-test-a"
    assert bridge_handover({"running": 1, "queued": 3}, home, now=100.0) == {"running": 1, "queued": 3}
    # The first run finished; the worker stores it before it claims the next one.
    assert bridge_handover({"running": 0, "queued": 3}, home, now=101.0, handover_s=15) == {"running": 1,
                                                                                          "queued": 2}
    # A hand-over that lasts longer than the window is reported as it is.
    assert bridge_handover({"running": 0, "queued": 3}, home, now=120.0, handover_s=15) == {"running": 0,
                                                                                          "queued": 3}


def test_an_empty_queue_shows_zero_and_forgets() -> None:
    home = "/tmp/akp-counts-test-b"
    bridge_handover({"running": 2, "queued": 0}, home, now=10.0)
    assert bridge_handover({"running": 0, "queued": 0}, home, now=11.0) == {"running": 0, "queued": 0}
    # Runs queued later (a new experiment) are not shown as running from the old memory.
    assert bridge_handover({"running": 0, "queued": 4}, home, now=12.0) == {"running": 0, "queued": 4}
    # The bridge never reports more running than there are runs waiting, and is per store.
    bridge_handover({"running": 3, "queued": 0}, home, now=20.0)
    assert bridge_handover({"running": 0, "queued": 1}, home, now=21.0) == {"running": 1, "queued": 0}
    assert bridge_handover({"running": 0, "queued": 1}, "/tmp/akp-counts-other", now=21.0) == {"running": 0,
                                                                                             "queued": 1}
