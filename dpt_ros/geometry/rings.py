"""Scan lines (rings) of a spinning multi-beam LiDAR, and thinning a scan to fewer beams.

A cloud with a ``ring`` field says which laser fired each point. Without one, the rings are recovered:

- **scan order** — a driver that writes points laser by laser, each sweeping the full circle (KITTI's
  Velodyne files), has its azimuth wrap around once per laser. With ``n_beams`` − 1 or ``n_beams`` wraps, the
  runs between wraps are the rings (a scan that starts mid-sweep has its last run belong to its first ring).
  Measured on the KITTI HDL-64 frame in ../shared/realdata: the elevation of one ring's points spreads over
  0.6–1° (5th–95th percentile; the lasers sit off the sensor axis) while rings are 0.33–0.5° apart, so
  clustering elevations cannot separate that sensor's rings but the scan order can.
- **elevation clustering** — otherwise the elevation angles atan2(z, √(x² + y²)) are clustered: split at gaps
  when each laser's elevation spread is smaller than the gap to its neighbours (sensors with the lasers on the
  axis; exact then, also when some beams hit nothing), else 1-D k-means into ``n_beams`` groups.

Ring indices count from the lowest elevation (0) up, like the simulator's and Velodyne drivers' ``ring``.
"""

from __future__ import annotations

import numpy as np

# A wrap is a jump of the azimuth by more than this between consecutive points (radians). Within one ring the
# azimuth steps by a fraction of a degree; missing returns leave gaps well below half a turn.
_WRAP_JUMP = np.pi
_KMEANS_ITERATIONS = 100


def elevation_deg(xyz: np.ndarray) -> np.ndarray:
    """(N,) float64 elevation angles in degrees of (N, 3) points in the LiDAR frame (z up)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))


def rings_from_scan_order(xyz: np.ndarray, n_beams: int) -> np.ndarray | None:
    """(N,) int64 ring per point when the points are in firing order (one azimuth sweep per laser), else None.

    Rings are renumbered by their median elevation, lowest 0, so the result does not depend on whether the
    driver writes the top or the bottom laser first.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) < 2 * n_beams:
        return None
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    wraps = np.flatnonzero(np.abs(np.diff(azimuth)) > _WRAP_JUMP) + 1
    if len(wraps) not in (n_beams - 1, n_beams):
        return None
    run = np.zeros(len(xyz), dtype=np.int64)
    run[wraps] = 1
    run = np.cumsum(run)
    if len(wraps) == n_beams:  # n + 1 runs: the scan started mid-sweep, the last run closes the first ring
        run[run == n_beams] = 0
    elevation = elevation_deg(xyz)
    medians = np.array([np.median(elevation[run == r]) for r in range(n_beams)])
    order = np.empty(n_beams, dtype=np.int64)
    order[np.argsort(medians, kind="stable")] = np.arange(n_beams)
    return order[run]


def rings_from_elevation(xyz: np.ndarray, n_beams: int) -> np.ndarray:
    """(N,) int64 ring per point by clustering the elevation angles of a ``n_beams``-beam LiDAR.

    Sorted elevations split where consecutive values are more than half the mean beam spacing apart; with at
    most ``n_beams`` groups (beams that hit nothing leave none), each group's ring is its centre's distance
    from the lowest group in median group spacings (evenly spaced beams). Otherwise (beams overlap in
    elevation) 1-D k-means into ``n_beams`` clusters numbers them from the lowest.
    """
    elevation = elevation_deg(xyz)
    if len(elevation) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(elevation, kind="stable")
    ordered = elevation[order]
    spread = ordered[-1] - ordered[0]
    starts = np.flatnonzero(np.diff(ordered) > 0.5 * spread / max(n_beams - 1, 1)) + 1
    if len(starts) < n_beams:
        bounds = np.concatenate([[0], starts, [len(ordered)]])
        centres = np.add.reduceat(ordered, bounds[:-1]) / np.diff(bounds)
        spacing = np.median(np.diff(centres)) if len(centres) > 1 else 1.0
        ring_of_group = np.rint((centres - centres[0]) / spacing).astype(np.int64)
        if len(set(ring_of_group)) == len(centres) and ring_of_group[-1] < n_beams:
            rings = np.empty(len(elevation), dtype=np.int64)
            rings[order] = np.repeat(ring_of_group, np.diff(bounds))
            return rings
    return _kmeans_rings(ordered, elevation, n_beams)


def _kmeans_rings(ordered: np.ndarray, elevation: np.ndarray, n_beams: int) -> np.ndarray:
    """1-D k-means of the (sorted) elevations into n_beams clusters, started from their quantiles."""
    centres = np.quantile(ordered, (np.arange(n_beams) + 0.5) / n_beams)
    cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
    bounds = np.zeros(n_beams + 1, dtype=np.int64)
    for _ in range(_KMEANS_ITERATIONS):
        # in 1-D each cluster is a contiguous run of the sorted values, between centre midpoints
        new_bounds = np.concatenate([[0], np.searchsorted(ordered, (centres[:-1] + centres[1:]) / 2), [len(ordered)]])
        if np.array_equal(new_bounds, bounds):
            break
        bounds = new_bounds
        counts = np.diff(bounds)
        sums = cumulative[bounds[1:]] - cumulative[bounds[:-1]]
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)  # an empty cluster keeps its centre
        centres = np.sort(centres)
    return np.searchsorted((centres[:-1] + centres[1:]) / 2, elevation).astype(np.int64)


def recover_rings(xyz: np.ndarray, n_beams: int) -> tuple[np.ndarray, str]:
    """(N,) int64 ring per point and how it was found ("scan order" or "elevation clustering")."""
    if n_beams < 1:
        raise ValueError(f"the LiDAR's beam count must be >= 1, got {n_beams}")
    rings = rings_from_scan_order(xyz, n_beams)
    if rings is not None:
        return rings, "scan order"
    return rings_from_elevation(xyz, n_beams), "elevation clustering"


def beam_stride(native_beams: int, beams: int) -> int:
    """k such that keeping every k-th of ``native_beams`` rings leaves ``beams``; ValueError if none does."""
    if beams < 1 or native_beams % beams:
        raise ValueError(f"cannot thin a {native_beams}-beam LiDAR to {beams} beams: the beam count must divide "
                         f"{native_beams} (e.g. {', '.join(str(native_beams // k) for k in (1, 2, 4, 8) if native_beams % k == 0)})")
    return native_beams // beams


def keep_every_kth_ring(ring: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: True for points on rings 0, k, 2k, … (k = 1 keeps everything)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return np.asarray(ring).astype(np.int64) % k == 0
