import numpy as np
import pytest

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.methods.crf import CRFParams, crf_refine


def _step_image(shape=(12, 24, 24), edge=12):
    img = np.zeros(shape, np.float32)
    img[..., edge:] = 1.0
    return img


def _probs(p1):
    return np.stack([1 - p1, p1]).astype(np.float32)


def test_clean_step_edge_stays_in_place():
    img = _step_image()
    p1 = np.where(img > 0.5, 0.8, 0.2)
    labels = crf_refine(img, _probs(p1)).argmax(0)
    np.testing.assert_array_equal(labels, (img > 0.5).astype(int))


def test_isolated_noise_voxels_are_removed():
    img = _step_image()
    p1 = np.where(img > 0.5, 0.8, 0.2)
    noisy = p1.copy()
    noisy[6, 5, 3] = 0.7  # wrong, isolated, in the dark half
    noisy[3, 20, 20] = 0.3  # wrong, isolated, in the bright half
    assert _probs(noisy).argmax(0)[6, 5, 3] == 1
    labels = crf_refine(img, _probs(noisy)).argmax(0)
    np.testing.assert_array_equal(labels, (img > 0.5).astype(int))


def test_blurred_boundary_moves_to_the_intensity_edge():
    img = _step_image()
    x = np.arange(24)
    p1 = np.broadcast_to(1 / (1 + np.exp(-(x - 10) / 4)), img.shape)
    before = _probs(p1).argmax(0)[6, 12]
    after = crf_refine(img, _probs(p1)).argmax(0)[6, 12]
    assert int((before == 0).sum()) == 11  # boundary 1 voxel before the edge
    assert int((after == 0).sum()) == 12  # on the edge


def test_anisotropic_spacing_limits_reach_along_the_coarse_axis():
    from napari_weakseg.core.methods.crf import _offsets

    offs = _offsets((4.0, 1.0, 1.0), (1, 3))
    assert max(abs(o[0]) for o in offs) == 1
    assert max(abs(o[2]) for o in offs) == 3


def test_probabilities_must_fit_the_image():
    with pytest.raises(WeaksegError, match=r"\(C, Z, Y, X\)"):
        crf_refine(np.zeros((4, 4, 4)), np.zeros((2, 4, 4, 5)))


def test_result_is_a_distribution():
    rng = np.random.default_rng(0)
    p = rng.random((3, 6, 7, 8)).astype(np.float32)
    q = crf_refine(
        rng.random((6, 7, 8)), p / p.sum(0), params=CRFParams(iterations=2)
    )
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-5)
