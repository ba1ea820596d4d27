import numpy as np
import pytest

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.sparse import (
    BACKGROUND_BRUSH,
    AnnotationStore,
    evenly_spaced_slices,
    from_sparse_labels,
    labelled_fraction,
    suggest_next_slice,
    to_sparse_labels,
)


def test_done_slice_makes_unpainted_voxels_background():
    painted = np.zeros((4, 5, 6), np.uint8)
    painted[1, 2, 3] = 2
    painted[3, 0, 0] = 1  # scribble on a slice that is not done
    painted[0, 4, 5] = BACKGROUND_BRUSH
    sparse = to_sparse_labels(painted, {0: [1]})
    expected = np.full(painted.shape, 255, np.uint8)
    expected[1] = 0
    expected[1, 2, 3] = 2
    expected[3, 0, 0] = 1
    expected[0, 4, 5] = 0
    np.testing.assert_array_equal(sparse, expected)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_done_slices_in_every_orientation(axis):
    painted = np.zeros((4, 5, 6), np.uint8)
    sparse = to_sparse_labels(painted, {axis: [2]})
    idx = [slice(None)] * 3
    idx[axis] = 2
    assert np.all(sparse[tuple(idx)] == 0)
    assert np.count_nonzero(sparse == 0) == painted.size // painted.shape[axis]


def test_round_trip_sparse_painted():
    sparse = np.full((4, 5, 6), 255, np.uint8)
    sparse[2] = 0
    sparse[2, 1:3, 1:3] = 1
    sparse[:, :, 4] = 2
    painted, done = from_sparse_labels(sparse)
    assert done == {0: [2], 1: [], 2: [4]}
    np.testing.assert_array_equal(to_sparse_labels(painted, done), sparse)


def test_out_of_range_done_slice_is_refused():
    with pytest.raises(WeaksegError, match="outside the volume"):
        to_sparse_labels(np.zeros((3, 3, 3), np.uint8), {"z": [3]})


def test_labelled_fraction():
    sparse = np.full((10, 2, 2), 255, np.uint8)
    sparse[:3] = 0
    assert labelled_fraction(sparse) == 0.3


def test_suggestions_spread_then_follow_uncertainty():
    shape = (20, 8, 8)
    assert suggest_next_slice(shape, {}, 0) == 10
    assert suggest_next_slice(shape, {0: [10]}, 0) == 4
    unc = np.zeros(shape)
    unc[17] = 1.0
    unc[10] = 5.0  # done slices are never suggested
    assert suggest_next_slice(shape, {0: [10]}, 0, unc) == 17
    with pytest.raises(WeaksegError, match="Every slice"):
        suggest_next_slice((2, 3, 3), {0: [0, 1]}, 0)


def test_evenly_spaced():
    assert evenly_spaced_slices(10, 1) == [5]
    assert evenly_spaced_slices(30, 2) == [10, 20]


def test_store_round_trip_is_atomic(tmp_path):
    store = AnnotationStore(tmp_path, "img")
    painted = np.zeros((3, 4, 5), np.uint8)
    painted[1, 1, 1] = 3
    store.save(painted, {"y": [2]})
    fresh = AnnotationStore(tmp_path, "img")
    loaded, done = fresh.load()
    np.testing.assert_array_equal(loaded, painted)
    assert done == {0: [], 1: [2], 2: []}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "img.weakseg-annotations.npz",
        "img.weakseg-annotations.npz.lock",  # the advisory lock per key
    ]
