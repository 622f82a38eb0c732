import dataclasses
import json

import pytest

from akp.experiment import ExperimentError, ExperimentSpec, load_preset, load_spec, preset_names
from akp.schedule import SwapEvent, SwapSchedule


def test_presets_load_and_round_trip():
    assert {"smoke", "teaching"} <= set(preset_names())
    for name in ("smoke", "teaching", "balanced"):
        spec = load_preset(name)
        assert ExperimentSpec.from_json(spec.to_json()) == spec
        assert ExperimentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_balanced_and_teaching_presets_are_pre_registered_designs():
    from akp.schedule import FAILURE_ROUTES, WORKING_ROUTES

    for name, min_seeds in [("balanced", 6), ("teaching", 2)]:
        spec = load_preset(name)
        names = [c.name for c in spec.conditions]
        working = [n for n in names if n in WORKING_ROUTES]
        failing = [n for n in names if n in FAILURE_ROUTES]
        assert len(working) >= 4 and len(failing) >= 4 and len(set(names)) == len(names) >= 8, (name, names)
        assert len(spec.seeds) >= min_seeds and spec.seed_mode == "independent"
        # Fixed before any run trains: a number between chance and the working routes' accuracy.
        assert isinstance(spec.family_rule["threshold"], float) and 0.6 < spec.family_rule["threshold"] < 0.9
        assert spec.primary_layer in spec.capture_layers
        assert "steady" in names
    assert load_preset("balanced").dataset_options["n_train"] >= load_preset("teaching").dataset_options["n_train"]
    smoke = load_preset("smoke")
    assert (len(smoke.conditions), len(smoke.seeds), smoke.epochs) == (2, 2, 2)


@pytest.mark.parametrize("change, field, message", [
    ({"epochs": 0}, "epochs", "epochs: must be an integer from 1 to"),
    ({"batch_size": -3}, "batch_size", "batch_size: must be an integer"),
    ({"optimizer": "lbfgs"}, "optimizer", "optimizer: unknown 'lbfgs'; allowed: sgd, adam, adamw"),
    ({"lr": 0}, "lr", "lr: must be a number in (0, 10]"),
    ({"lr": float("nan")}, "lr", "lr: must be a number in (0, 10]"),
    ({"seeds": []}, "seeds", "seeds: must be a non-empty list"),
    ({"seeds": [1, 1]}, "seeds", "seeds: must be unique"),
    ({"seeds": [-1]}, "seeds", "seeds: must be an integer from 0 to 2147483647"),
    ({"name": "x" * 1000}, "name", "name: at most 200 characters"),
    ({"name": "  "}, "name", "name: must be non-empty text"),
    ({"layers": ["conv9"]}, "layers", "layers: unknown layer 'conv9'; allowed: conv1"),
    ({"layers": 5}, "layers", "layers: list at least one layer"),
    ({"probe_size": 2}, "probe_size", "probe_size: must be an integer from 4"),
    ({"capture_epochs": [5]}, "capture_epochs", "capture_epochs: each must be an integer from 0 to 1"),
    ({"capture_epochs": 5}, "capture_epochs", "capture_epochs: must be a list"),
    ({"conditions": []}, "conditions", "conditions: at least one"),
    ({"conditions": ["steady", "steady"]}, "conditions", "conditions: names must be unique"),
    ({"conditions": ["nope"]}, "conditions[0]", "conditions[0]: unknown preset 'nope'"),
    ({"conditions": [{"name": "x", "events": [{"epoch": 2, "activation": "tanh"}]}]}, "conditions[0].events[0].epoch",
     "conditions[0] (x): events[0].epoch: 2 is past the training budget; allowed: 0 to 1"),
    ({"dataset_options": {"n_train": 10}}, "dataset_options.n_train", "dataset_options.n_train: must be an integer"),
    ({"dataset_options": {"colour": 1}}, "dataset_options.colour", "dataset_options.colour: unknown option"),
    ({"dataset_options": {"size": 8, "difficulty": 3.0}}, "dataset_options.size", "dataset_options.size: must be"),
    ({"dataset_options": {"difficulty": float("nan")}}, "dataset_options.difficulty", "dataset_options.difficulty"),
    ({"model": {"depth": 0}}, "model.depth", "model.depth: must be an integer from 1 to 6"),
    ({"model": {"depth": 2, "heads": 3}}, "model.heads", "model.heads: unknown option"),
    ({"speed": 1}, "experiment", "experiment: unknown field(s) ['speed']"),
])
def test_invalid_specs_name_the_field(change, field, message):
    data = load_preset("smoke").to_dict()
    data.update(change)
    with pytest.raises(ExperimentError) as info:
        ExperimentSpec.from_dict(data)
    assert message in str(info.value)
    assert info.value.field == field


def test_a_bad_synthetic_option_fails_at_validate_not_when_the_data_loads():
    spec = dataclasses.replace(load_preset("teaching"), dataset_options={"size": 8, "difficulty": 3.0})
    with pytest.raises(ExperimentError) as info:
        spec.validate()
    assert info.value.field == "dataset_options.size"


def test_with_overrides_and_budget_checks():
    spec = load_preset("smoke").with_overrides(seeds=3, epochs=4)
    assert spec.seeds == [0, 1, 2] and spec.epochs == 4
    teaching = load_preset("teaching")
    with pytest.raises(ExperimentError, match="past the training budget"):
        teaching.with_overrides(epochs=2)  # its single-swap event at epoch 2 no longer fits
    with pytest.raises(ExperimentError, match="seeds: must be an integer from 1"):
        teaching.with_overrides(seeds=0)


def test_load_spec_reads_files_and_reports_missing_ones(tmp_path):
    spec = ExperimentSpec(name="mine", epochs=3, conditions=[SwapSchedule("a", events=(SwapEvent(1, loss="mse"),))])
    path = tmp_path / "mine.json"
    path.write_text(spec.to_json())
    assert load_spec(str(path)) == spec
    with pytest.raises(ExperimentError, match="does not exist"):
        load_spec(str(tmp_path / "missing.json"))
    with pytest.raises(ExperimentError, match="preset: unknown 'nosuch'; allowed: .*smoke"):
        load_spec("nosuch")
    assert spec.capture_at == [0, 1, 2] and spec.capture_layers[-2:] == ["embedding", "logits"]


@pytest.mark.parametrize("change, field", [
    ({"family_rule": {"rule": "vibes"}}, "family_rule.rule"),
    ({"family_rule": {"threshold": 1.5}}, "family_rule.threshold"),
    ({"family_rule": {"threshold": 0.0}}, "family_rule.threshold"),
    ({"family_rule": {"max_gap": -0.1}}, "family_rule.max_gap"),
    ({"family_rule": {"cutoff": 0.8}}, "family_rule"),
    ({"family_rule": 0.8}, "family_rule"),
    ({"primary_layer": "conv9"}, "primary_layer"),
    ({"seed_mode": "shared"}, "seed_mode"),
    ({"probe_size": 600, "dataset_options": {"n_test": 500}}, "probe_size"),
])
def test_design_fields_are_validated_with_their_field(change, field):
    data = load_preset("smoke").to_dict()
    data.update(change)
    with pytest.raises(ExperimentError) as info:
        ExperimentSpec.from_dict(data)
    assert info.value.field == field


def test_design_fields_round_trip_and_old_specs_get_the_defaults():
    data = load_preset("smoke").to_dict()
    data.update(family_rule={"threshold": 0.75}, primary_layer="conv2", seed_mode="paired")
    spec = ExperimentSpec.from_dict(data)
    assert spec.family_rule == {"rule": "accuracy", "threshold": 0.75, "max_gap": None}
    assert spec.threshold_source == "spec" and ExperimentSpec.from_json(spec.to_json()) == spec
    old = {k: v for k, v in load_preset("smoke").to_dict().items()
           if k not in ("family_rule", "primary_layer", "seed_mode")}
    legacy = ExperimentSpec.from_dict(old)
    assert (legacy.family_rule["threshold"], legacy.primary_layer, legacy.seed_mode) == (None, "embedding",
                                                                                         "independent")
    assert legacy.threshold_source == "largest_gap"


def test_run_seed_is_independent_across_conditions_unless_paired():
    spec = load_preset("smoke")
    independent = {spec.run_seed(c, s) for c in ("steady", "alternating") for s in range(3)}
    assert len(independent) == 6 and all(0 <= x < 2**31 for x in independent)
    assert spec.run_seed("steady", 1) == spec.run_seed("steady", 1)  # stable (sha256, not hash())
    paired = dataclasses.replace(spec, seed_mode="paired")
    assert paired.run_seed("steady", 4) == paired.run_seed("alternating", 4) == 4


def test_pcam_preset_needs_a_dataset_and_says_so():
    from akp.experiment import preset_needs_dataset

    assert "one subfolder per class" in preset_needs_dataset("pcam")
    assert preset_needs_dataset("teaching") is None
    with pytest.raises(ExperimentError) as err:
        load_preset("pcam")
    assert err.value.field == "dataset" and "--dataset PATH" in str(err.value)
    spec = load_preset("pcam", dataset="/data/pcam")
    assert spec.dataset == "/data/pcam" and spec.dataset_options["crop"] == 32
    # A synthetic preset on real data keeps only the options that apply to it.
    real = load_preset("balanced", dataset="/data/pcam")
    assert real.dataset == "/data/pcam" and real.dataset_options == {"size": 32}
