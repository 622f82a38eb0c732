"""Owner-checked changes to a stored experiment: delete, rename, notes, tags.

A mixin of :class:`akp.store.RunStore` (which supplies ``experiment``,
``experiment_dir``, ``run_file`` and the write transaction ``_tx``), kept apart
so the store module holds the tables and this one the rules of :mod:`akp.access`:
only the experiment's owner or an admin may change it; ``user=None`` is a
trusted local caller. Every input is checked before anything is written.
"""
from __future__ import annotations

import json
import shutil
from typing import Any

from akp.access import admins_from_env, check_can_manage
from akp.annotations import check_notes, check_tags
from akp.constraints import SPEC
from akp.errors import StoreError
from akp.runs import ACTIVE_STATES

__all__ = ["ExperimentAdmin"]


class ExperimentAdmin:
    """Delete, rename, annotate and tag experiments, for their owner or an admin (a mixin of RunStore)."""

    def check_access(self, run_or_experiment_id: str, user: str | None, *, admins: Any = None,
                     action: str = "change") -> dict[str, Any]:
        """The record of the experiment (of a run, given a run id), once ``user`` may ``action`` it.

        For callers that change runs (:meth:`akp.jobs.JobManager.cancel`, ``resume``).

        Raises
        ------
        StoreError
            If it is neither a run nor an experiment.
        AccessError
            If ``user`` is neither the owner nor an admin (``admins``, default ``$AKP_ADMINS``).
        """
        try:
            experiment_id = self.run(run_or_experiment_id)["experiment_id"]
        except StoreError:
            experiment_id = run_or_experiment_id
        return self._manageable(experiment_id, user, admins, action)

    def _manageable(self, experiment_id: str, user: str | None, admins: Any, action: str) -> dict[str, Any]:
        """The experiment's record, once ``user`` may ``action`` it.

        Raises
        ------
        StoreError
            If there is no such experiment.
        AccessError
            If ``user`` is neither its owner nor an admin.
        """
        record = self.experiment(experiment_id)
        check_can_manage(record, user, admins_from_env() if admins is None else admins, action=action)
        return record

    def delete_experiment(self, experiment_id: str, *, user: str | None = None,
                          admins: frozenset[str] | None = None, force: bool = False) -> None:
        """Delete an experiment: its rows (runs, metrics, events) and files (representations, probe set,
        checkpoints, cached projections).

        Parameters
        ----------
        experiment_id : str
        user : str, optional
            Who asks: its owner or an admin. None is a trusted local caller (:mod:`akp.access`).
        admins : set of str, optional
            Default :func:`akp.access.admins_from_env`.
        force : bool, default=False
            Delete even with queued or running runs. Only for undoing a creation
            that no worker has seen (a refused launch); never for users.

        Raises
        ------
        StoreError
            If there is no such experiment, or it still has queued or running runs
            (cancel them first; unless ``force``); nothing is deleted.
        AccessError
            If ``user`` may not delete it; nothing is deleted.
        """
        self._manageable(experiment_id, user, admins, "delete")
        marks = ",".join("?" * len(ACTIVE_STATES))
        with self._tx() as conn:
            # Checked in the deleting transaction: no run can be claimed between the check and the delete.
            run_ids = [r["id"] for r in conn.execute("SELECT id FROM runs WHERE experiment_id = ?",
                                                     (experiment_id,))]
            active = conn.execute(f"SELECT COUNT(*) FROM runs WHERE experiment_id = ? AND state IN ({marks})",
                                  (experiment_id, *ACTIVE_STATES)).fetchone()[0]
            if active and not force:
                raise StoreError.at("experiment_id", f"experiment {experiment_id} has {active} queued or running "
                                                     "runs; cancel them first, then delete it (nothing was deleted)")
            conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))
        for run_id in run_ids:
            self.run_file(run_id).unlink(missing_ok=True)
        # The probe set, checkpoints (akp.checkpoints) and cached projections (run_cache_dir) live here.
        shutil.rmtree(self.experiment_dir(experiment_id), ignore_errors=True)

    def rename_experiment(self, experiment_id: str, name: str, *, user: str | None = None,
                          admins: frozenset[str] | None = None) -> str:
        """Give an experiment a new name (in its record and its spec).

        Parameters
        ----------
        experiment_id : str
        name : str
            Checked like the spec's ``name`` (:data:`akp.constraints.SPEC`); surrounding spaces are removed.
        user, admins
            As in :meth:`delete_experiment`.

        Returns
        -------
        str
            The name stored.

        Raises
        ------
        StoreError
            If the name is not allowed (field ``name``) or there is no such experiment; nothing changes.
        AccessError
            If ``user`` may not rename it; nothing changes.
        """
        SPEC["name"].check(name, StoreError)
        name = name.strip()
        record = self._manageable(experiment_id, user, admins, "rename")
        spec = {**record["spec"], "name": name}
        with self._tx() as conn:
            conn.execute("UPDATE experiments SET name = ?, spec = ? WHERE id = ?",
                         (name, json.dumps(spec), experiment_id))
        return name

    def set_notes(self, experiment_id: str, text: str, *, user: str | None = None,
                  admins: frozenset[str] | None = None) -> str:
        """Replace an experiment's notes (free text; ``""`` clears them).

        Parameters
        ----------
        experiment_id : str
        text : str
            At most :data:`akp.annotations.MAX_NOTES_CHARS` characters.
        user, admins
            As in :meth:`delete_experiment`.

        Returns
        -------
        str
            The notes stored.

        Raises
        ------
        AKPError
            If the text is not allowed (field ``notes``); nothing changes.
        StoreError
            If there is no such experiment.
        AccessError
            If ``user`` may not change it; nothing changes.
        """
        text = check_notes(text)
        self._manageable(experiment_id, user, admins, "annotate")
        with self._tx() as conn:
            conn.execute("UPDATE experiments SET notes = ? WHERE id = ?", (text, experiment_id))
        return text

    def set_tags(self, experiment_id: str, tags: list[str], *, user: str | None = None,
                 admins: frozenset[str] | None = None) -> list[str]:
        """Replace an experiment's tags.

        Parameters
        ----------
        experiment_id : str
        tags : list of str
            Checked by :func:`akp.annotations.check_tags` (short, no commas or control
            characters, a capped number; repeats dropped). ``[]`` clears them.
        user, admins
            As in :meth:`delete_experiment`.

        Returns
        -------
        list of str
            The tags stored.

        Raises
        ------
        AKPError
            If a tag is not allowed (field ``tags`` or ``tags[i]``); nothing changes.
        StoreError
            If there is no such experiment.
        AccessError
            If ``user`` may not change it; nothing changes.
        """
        tags = check_tags(tags)
        self._manageable(experiment_id, user, admins, "tag")
        with self._tx() as conn:
            conn.execute("UPDATE experiments SET tags = ? WHERE id = ?", (json.dumps(tags), experiment_id))
        return tags
