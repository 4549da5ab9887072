"""Ring recovery and beam thinning against the simulator's known rings."""

import numpy as np
import pytest

from dpt_ros.geometry.rings import (
    beam_stride,
    keep_every_kth_ring,
    recover_rings,
    rings_from_elevation,
    rings_from_scan_order,
)
from dpt_ros.sim.scene import LidarConfig, Plane, Scene, Surface, make_transform, simulate_lidar


def _scan(n_beams: int = 16, seed: int = 0):
    """A spinning LiDAR 1.8 m above the ground, a wall around it 25 m away: every beam returns somewhere."""
    scene = Scene((Plane((0.0, 0.0, 1.0), 0.0, Surface((0.5, 0.5, 0.5))),
                   Plane((-1.0, 0.0, 0.0), -25.0, Surface((0.5, 0.5, 0.5))),
                   Plane((1.0, 0.0, 0.0), -25.0, Surface((0.5, 0.5, 0.5))),
                   Plane((0.0, -1.0, 0.0), -25.0, Surface((0.5, 0.5, 0.5))),
                   Plane((0.0, 1.0, 0.0), -25.0, Surface((0.5, 0.5, 0.5)))))
    config = LidarConfig(n_beams=n_beams, elevation_min_deg=-24.0, elevation_max_deg=6.0, azimuth_steps=360,
                         dropout_probability=0.1)
    return simulate_lidar(scene, config, make_transform(np.eye(3), (0.0, 0.0, 1.8)), np.random.default_rng(seed))


def test_rings_come_back_from_the_scan_order_and_from_elevations():
    scan = _scan()
    rings, how = recover_rings(scan.points, 16)
    assert how == "scan order"
    np.testing.assert_array_equal(rings, scan.ring)
    np.testing.assert_array_equal(rings_from_scan_order(scan.points[::-1], 16), scan.ring[::-1])  # top laser first
    shuffle = np.random.default_rng(1).permutation(len(scan.points))
    assert rings_from_scan_order(scan.points[shuffle], 16) is None  # not in firing order
    rings, how = recover_rings(scan.points[shuffle], 16)
    assert how == "elevation clustering"
    np.testing.assert_array_equal(rings, scan.ring[shuffle])  # lasers on the axis: elevations separate exactly
    np.testing.assert_array_equal(rings_from_elevation(scan.points, 16), scan.ring)


def test_a_scan_started_mid_sweep_closes_its_first_ring():
    scan = _scan()
    start = np.flatnonzero(scan.ring == 3)[40]  # begin in the middle of ring 3's sweep
    order = np.r_[start:len(scan.points), 0:start]
    rings = rings_from_scan_order(scan.points[order], 16)
    np.testing.assert_array_equal(rings, scan.ring[order])


@pytest.mark.parametrize("native, beams, k", [(64, 64, 1), (64, 32, 2), (64, 16, 4), (64, 8, 8), (32, 8, 4)])
def test_keeping_every_kth_ring(native, beams, k):
    assert beam_stride(native, beams) == k
    ring = np.arange(5 * native) % native
    kept = keep_every_kth_ring(ring, k)
    assert sorted(set(ring[kept])) == list(range(0, native, k)) and len(set(ring[kept])) == beams


def test_impossible_beam_counts_are_refused():
    with pytest.raises(ValueError, match="cannot thin a 32-beam LiDAR to 64 beams"):
        beam_stride(32, 64)
    with pytest.raises(ValueError, match="must divide"):
        beam_stride(64, 24)
