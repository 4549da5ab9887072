"""Densification of sparse depth on the prompt grid, on hand-made inputs."""

import numpy as np
import pytest

from dpt_ros.prompt.densify import densify, fill_morphological, fill_nearest

N = np.nan


def test_nearest_fill_copies_the_nearest_valid_cell():
    sparse = np.array([[N, 2.0, N, N, 8.0, N]], dtype=np.float32)
    np.testing.assert_array_equal(fill_nearest(sparse), [[2, 2, 2, 8, 8, 8]])


def test_nearest_fill_in_two_dimensions_and_zero_is_no_data():
    sparse = np.zeros((5, 5), dtype=np.float32)
    sparse[0, 0] = 1.0
    sparse[4, 4] = 9.0
    dense = fill_nearest(sparse)
    # cells closer to the top-left corner take 1 m, closer to the bottom-right 9 m (anti-diagonal is a tie)
    for row in range(5):
        for col in range(5):
            if row + col < 4:
                assert dense[row, col] == 1.0
            elif row + col > 4:
                assert dense[row, col] == 9.0
            else:
                assert dense[row, col] in (1.0, 9.0)


def test_morphological_fill_lets_the_nearer_surface_win_at_an_edge():
    # A hole between a far wall (10 m) and a near object (2 m): the near edge is kept, not eroded.
    sparse = np.array([[10.0, N, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(fill_morphological(sparse), [[10, 2, 2]])


def test_morphological_fill_reaches_then_hands_over_to_nearest():
    sparse = np.full((1, 8), N, dtype=np.float32)
    sparse[0, 0], sparse[0, 7] = 1.0, 4.0
    # two 3-wide passes fill cells 1, 2 (from 1 m) and 5, 6 (from 4 m); cells 3 and 4 by nearest.
    np.testing.assert_array_equal(fill_morphological(sparse, kernel=3, iterations=2), [[1, 1, 1, 1, 4, 4, 4, 4]])
    # a cell out of reach of the dilation keeps nearest-fill semantics, above the top "ring"
    rings = np.full((6, 4), N, dtype=np.float32)
    rings[4] = [5.0, 5.0, 6.0, 6.0]
    dense = fill_morphological(rings, kernel=3, iterations=1)
    # the pass fills rows 3 and 5 with the window minimum (the nearer 5 m spreads over the edge) ...
    np.testing.assert_array_equal(dense[3], [5, 5, 5, 6])
    np.testing.assert_array_equal(dense[5], [5, 5, 5, 6])
    # ... and rows 0-2, out of reach, copy the nearest filled cell straight below them
    np.testing.assert_array_equal(dense[:3], np.tile([5, 5, 5, 6], (3, 1)))


@pytest.mark.parametrize("method", ["nearest", "morphological"])
def test_valid_cells_are_never_changed_and_the_output_is_finite(method):
    rng = np.random.default_rng(3)
    sparse = rng.uniform(0.5, 50.0, size=(48, 64)).astype(np.float32)
    sparse[rng.random(sparse.shape) < 0.9] = np.nan
    dense = densify(sparse, method)
    valid = np.isfinite(sparse)
    assert dense.dtype == np.float32 and np.isfinite(dense).all()
    np.testing.assert_array_equal(dense[valid], sparse[valid])
    # every filled value is one of the input depths (nearest) or the nearest of some neighbours
    assert set(np.unique(dense)) <= set(np.unique(sparse[valid]))


@pytest.mark.parametrize("method", ["nearest", "morphological"])
def test_nothing_to_fill_from_raises(method):
    with pytest.raises(ValueError, match="without a single valid pixel"):
        densify(np.full((3, 3), np.nan, dtype=np.float32), method)


def test_unknown_method_and_bad_kernel_raise():
    with pytest.raises(ValueError, match="unknown densification"):
        densify(np.ones((2, 2), dtype=np.float32), "bilinear")
    with pytest.raises(ValueError, match="odd kernel"):
        fill_morphological(np.ones((2, 2), dtype=np.float32), kernel=4)
