"""Tests of akp.datasets.synthetic: the synthetic cell generator and its option schema."""
import numpy as np
import pytest

from akp.datasets import CLASS_NAMES, DatasetError, make_synthetic_cells, synthetic_dataset
from akp.datasets.synthetic import OPTIONS, TEST_SEED_OFFSET


def test_shapes_dtypes_range_and_balance():
    x, y = make_synthetic_cells(200, size=32, seed=1)
    assert x.shape == (200, 1, 32, 32) and x.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == {0, 1} and y.sum() == 100
    assert CLASS_NAMES == ("non-cancer", "cancer")


def test_deterministic_per_seed():
    a = make_synthetic_cells(50, seed=3)
    b = make_synthetic_cells(50, seed=3)
    c = make_synthetic_cells(50, seed=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_cells_are_structured_not_noise():
    x, _ = make_synthetic_cells(400, seed=0, difficulty=0.0)
    img = x[:, 0]
    centre = img[:, 12:20, 12:20].mean()
    corners = np.concatenate([img[:, :4, :4], img[:, -4:, -4:]]).mean()
    # A dark stained nucleus in the middle of a light background.
    assert corners > 0.8 and centre < corners - 0.2


def _global_stats(x):
    g = x[:, 0].reshape(len(x), -1)
    return np.stack([g.mean(1), g.std(1), (g < 0.5).mean(1)], axis=1)


def _dark_spots(x, quantile=0.06):
    """Connected patches of each image's darkest pixels: nucleoli, chromatin clumps, extra nuclei."""
    from scipy import ndimage

    g = x[:, 0]
    cut = np.quantile(g.reshape(len(g), -1), quantile, axis=1)
    return np.array([ndimage.label(g[i] < cut[i])[1] for i in range(len(g))], dtype=float)


def test_global_statistics_do_not_give_the_label():
    # Even at the easiest difficulty: stain normalisation gives both classes the same histogram model.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_synthetic_cells(2000, seed=0, difficulty=0.0)
    stats = _global_stats(x)
    acc = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression()), stats, y, cv=5).mean()
    assert acc <= 0.60, acc
    for column in range(3):  # each statistic: class means within a fifth of its spread
        a, b = stats[y == 0, column], stats[y == 1, column]
        assert abs(a.mean() - b.mean()) < 0.2 * stats[:, column].std()


def _separability(f, y):
    return abs(f[y == 1].mean() - f[y == 0].mean()) / f.std()


def test_cancer_cells_have_more_dark_spots():
    # Nucleoli, coarse chromatin clumps and multinucleation all add dark spots; stain does not.
    x, y = make_synthetic_cells(1000, seed=0, difficulty=0.0)
    spots = _dark_spots(x)
    assert spots[y == 1].mean() > 1.2 * spots[y == 0].mean()
    assert _separability(spots, y) > 0.4


def test_difficulty_increases_class_overlap():
    def separability(difficulty):
        x, y = make_synthetic_cells(1000, seed=0, difficulty=difficulty)
        return _separability(_dark_spots(x), y)

    assert separability(0.0) > separability(0.5) > separability(1.0)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n=1), "n"), (dict(n=10, size=8), "size"), (dict(n=10, difficulty=2.0), "difficulty")])
def test_invalid_parameters_name_the_field(kwargs, field):
    with pytest.raises(DatasetError, match=f"^{field}: "):
        make_synthetic_cells(**kwargs)


def test_synthetic_dataset_splits_are_independent():
    ds = synthetic_dataset(100, 60, seed=2)
    assert ds.x_train.shape == (100, 1, 32, 32) and ds.x_test.shape == (60, 1, 32, 32)
    assert not np.array_equal(ds.x_train[:60], ds.x_test)
    assert ds.channels == 1 and ds.n_classes == 2 and ds.size == 32


def test_the_test_split_is_the_generator_at_the_offset_seed():
    ds = synthetic_dataset(40, 30, size=16, seed=5, difficulty=0.2)
    x, y = make_synthetic_cells(30, size=16, seed=5 + TEST_SEED_OFFSET, difficulty=0.2)
    assert np.array_equal(ds.x_test, x) and np.array_equal(ds.y_test, y)


def test_numpy_integers_are_accepted_as_sizes():
    x, _ = make_synthetic_cells(np.int64(4), size=np.int64(16))
    assert x.shape == (4, 1, 16, 16)


def test_option_schema_fields_labels_and_bounds():
    assert {k: c.field for k, c in OPTIONS.items()} == {k: f"dataset_options.{k}" for k in OPTIONS}
    assert {k: c.label for k, c in OPTIONS.items()} == {
        "n_train": "Training images", "n_test": "Test images", "size": "Image size (px)", "seed": "Data seed",
        "difficulty": "Difficulty"}
    assert {k: (c.low, c.high) for k, c in OPTIONS.items()} == {
        "n_train": (20, 200_000), "n_test": (20, 100_000), "size": (16, 128), "seed": (0, 2**31 - 1),
        "difficulty": (0.0, 1.0)}
