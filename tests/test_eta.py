"""Live ETA: epoch timings of a held run, queued runs' estimates, an experiment's remaining time (fixed clocks)."""
from __future__ import annotations

import io

import pytest

from akp.cli import ProgressBar
from akp.job_state import Job, experiment_eta, fill_eta, job_snapshot
from akp.runs import CANCELLED, DONE, QUEUED, RUNNING


def _job(run_id="r0", epochs=4, state=RUNNING, experiment="e1") -> Job:
    return Job(run_id, experiment, "steady", 0, epochs, None, state=state)


def _train(job: Job, clock: list[float], epoch: int, n_batches: int, batch_seconds: float, eval_seconds: float):
    """Report every batch of ``epoch`` and its end on a fake clock advanced by the given durations."""
    for b in range(1, n_batches + 1):
        clock[0] += batch_seconds
        job.record(epoch, job.epochs, b, n_batches, None, clock[0])
    clock[0] += eval_seconds
    job.record(epoch, job.epochs, n_batches, n_batches, {"test_acc": 0.5, "train_acc": 0.5, "gap": 0.0}, clock[0])


def test_epochs_are_timed_from_the_previous_epoch_end_and_the_first_from_its_first_batch():
    job, clock = _job(), [100.0]
    _train(job, clock, 0, n_batches=10, batch_seconds=0.5, eval_seconds=1.0)  # 6.0 s, 0.5 s of it before timing
    # First epoch: 9 batches + eval = 5.5 s seen from its first batch report, scaled by 10/9.
    assert job.epoch_seconds == [pytest.approx(5.5 * 10 / 9)]
    _train(job, clock, 1, n_batches=10, batch_seconds=0.4, eval_seconds=1.0)  # exactly 5.0 s
    assert job.epoch_seconds[1] == pytest.approx(5.0)
    snap = job_snapshot(job, None, clock[0])
    assert snap["seconds_per_epoch"] == pytest.approx((5.5 * 10 / 9 + 5.0) / 2)
    assert snap["eta_seconds"] == pytest.approx(2 * snap["seconds_per_epoch"])  # 2 of 4 epochs left
    assert snap["epochs_done"] == 2 and snap["test_acc"] == 0.5


def test_the_first_epoch_shows_its_pace_so_far_and_the_remaining_time_shrinks_with_batches():
    job, clock = _job(epochs=2), [0.0]
    assert job_snapshot(job, None, 0.0)["seconds_per_epoch"] is None  # nothing reported yet
    job.record(0, 2, 1, 10, None, 1.0)  # mark at the first batch report
    assert job_snapshot(job, None, 1.0)["eta_seconds"] is None  # no batch since the mark: no pace
    job.record(0, 2, 5, 10, None, 3.0)  # 4 batches in 2 s: 5 s per 10-batch epoch
    snap = job_snapshot(job, None, 3.0)
    assert snap["seconds_per_epoch"] == pytest.approx(5.0)
    assert snap["eta_seconds"] == pytest.approx(1.5 * 5.0)  # 1.5 epochs left
    del clock


def test_restored_epochs_of_a_resumed_run_are_not_timed():
    job, clock = _job(epochs=4), [50.0]
    for epoch in range(2):  # a checkpoint's history is replayed without batches, all at once
        job.record(epoch, 4, 0, 0, {"test_acc": 0.6, "train_acc": 0.6, "gap": 0.0}, clock[0])
    assert job.epoch_seconds == [] and job.epochs_done == 2
    _train(job, clock, 2, n_batches=4, batch_seconds=1.0, eval_seconds=0.0)
    assert job.epoch_seconds == [pytest.approx(4.0)]  # from the last restored report: the whole epoch
    assert job_snapshot(job, None, clock[0])["eta_seconds"] == pytest.approx(4.0)


def test_final_runs_have_nothing_left():
    job, clock = _job(epochs=1), [0.0]
    _train(job, clock, 0, n_batches=2, batch_seconds=1.0, eval_seconds=0.0)
    for state in (DONE, CANCELLED):
        job.state = state
        assert job_snapshot(job, None, clock[0])["eta_seconds"] == 0.0


def _snap(run_id, state, eta=None, spe=None, position=None, epochs=4, epoch=0, batch=0, n_batches=0,
          experiment="e1", done=0):
    return {"run_id": run_id, "experiment_id": experiment, "state": state, "eta_seconds": eta,
            "seconds_per_epoch": spe, "queue_position": position, "epochs": epochs, "epoch": epoch, "batch": batch,
            "n_batches": n_batches, "epochs_done": done}


def test_queued_runs_get_the_mean_pace_of_their_experiments_measured_runs():
    snaps = [_snap("a", RUNNING, eta=6.0, spe=4.0, epoch=2, batch=5, n_batches=10),
             _snap("b", DONE, eta=0.0, spe=2.0),
             _snap("c", QUEUED, position=0),
             _snap("d", QUEUED, position=1, done=1),  # a resumed run: 1 epoch already done
             _snap("x", QUEUED, position=2, experiment="other")]
    fill_eta(snaps)
    assert snaps[2]["seconds_per_epoch"] == pytest.approx(3.0) and snaps[2]["eta_seconds"] == pytest.approx(12.0)
    assert snaps[3]["eta_seconds"] == pytest.approx(9.0)
    assert snaps[4]["eta_seconds"] is None  # nothing measured in its own experiment
    assert snaps[0]["eta_seconds"] == 6.0  # measured ones are left alone


def test_experiment_eta_schedules_queued_runs_on_the_first_free_worker():
    snaps = [_snap("a", RUNNING, eta=10.0), _snap("b", RUNNING, eta=2.0),
             _snap("c", QUEUED, eta=5.0, position=0), _snap("d", QUEUED, eta=5.0, position=1),
             _snap("e", DONE, eta=0.0)]
    # Two workers: c starts at 2 and ends at 7, d starts at 7 and ends at 12; a ends at 10.
    assert experiment_eta(snaps, workers=2) == pytest.approx(12.0)
    # One worker holding both running runs is not possible; three workers: c at 0 -> 5, d at 2 -> 7.
    assert experiment_eta(snaps, workers=3) == pytest.approx(10.0)
    assert experiment_eta([_snap("c", QUEUED, eta=5.0, position=0)] * 3, workers=1) == pytest.approx(15.0)


def test_experiment_eta_is_zero_when_nothing_is_active_and_none_before_anything_is_measured():
    assert experiment_eta([_snap("e", DONE, eta=0.0)], workers=1) == 0.0
    assert experiment_eta([_snap("a", RUNNING, eta=3.0), _snap("c", QUEUED, position=0)], workers=1) is None


def test_the_cli_progress_line_shows_the_pace_and_the_remaining_times():
    out = io.StringIO()
    bar = ProgressBar(3, stream=out)
    snaps = [_snap("a", DONE, eta=0.0, spe=2.0),
             {**_snap("b", RUNNING, eta=3.0, spe=2.0, epoch=2, batch=5, n_batches=10), "condition": "steady",
              "seed": 1},
             _snap("c", QUEUED, eta=8.0, spe=2.0, position=0)]
    bar.show(snaps, workers=1)
    line = out.getvalue()
    assert "run 2/3 steady seed 1 epoch 3/4" in line
    assert "2.0 s/epoch" in line and "run 3 s left" in line and "all 11 s left" in line
    fresh = io.StringIO()
    ProgressBar(3, stream=fresh).show([{**s, "eta_seconds": None, "seconds_per_epoch": None} for s in snaps],
                                      workers=1)
    assert "epoch 3/4" in fresh.getvalue() and "left" not in fresh.getvalue()  # not measured yet: no guess


def test_figures_are_redrawn_at_once_on_a_state_change_and_at_most_every_refresh_for_new_epochs():
    from ui.jobs import figures_due

    drawn = (("r1", 2, RUNNING), ("r2", 0, QUEUED))
    shown = ("e1", drawn, 100.0)
    assert not figures_due(shown, "e1", drawn, 500.0, 10.0)  # same data: never, however long ago
    more_epochs = (("r1", 3, RUNNING), ("r2", 0, QUEUED))
    assert not figures_due(shown, "e1", more_epochs, 105.0, 10.0)
    assert figures_due(shown, "e1", more_epochs, 110.0, 10.0)
    started = (("r1", 3, DONE), ("r2", 0, RUNNING))
    assert figures_due(shown, "e1", started, 100.5, 10.0)
    assert not figures_due(None, "e1", started, 100.5, 10.0)  # nothing drawn yet: the full run draws them
    assert not figures_due(("other", drawn, 0.0), "e1", started, 100.5, 10.0)


def test_a_managers_snapshots_carry_the_measured_pace_of_trained_runs(store):
    from akp.jobs import JobManager
    from tests.specs import small_smoke_spec

    eid = store.create_experiment(small_smoke_spec("eta", epochs=2, seeds=[0], n_train=64, conditions=slice(0, 1)))
    with JobManager(store, cache_projections=False) as manager:
        manager.submit(eid)
        assert manager.wait(eid, timeout=120)
        (snap,) = manager.status(eid)
    assert snap["state"] == DONE and snap["eta_seconds"] == 0.0
    assert snap["seconds_per_epoch"] is not None and snap["seconds_per_epoch"] > 0
    assert experiment_eta([snap], workers=1) == 0.0
