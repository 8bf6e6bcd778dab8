"""On-device augmentation: each transform against a per-image NumPy reference drawing the
same numbers, the same batches on every backend, and no host sync on the counting backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from helpers import BackendCase, to_numpy
from xpnet import data
from xpnet.data import transforms as T
from xpnet.testing import count_ops, register_counting_backend


def _batch(shape: tuple[int, ...] = (5, 3, 6, 7), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _crop_reference(
    x: np.ndarray, size: tuple[int, int], padding: tuple[int, int], mode: str, seed: int
) -> np.ndarray:
    """Pad with NumPy, then cut each image at offsets drawn as RandomCrop documents (all
    tops, then all lefts, from the generator)."""
    pad = ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2)
    numpy_mode = {
        "constant": "constant",
        "reflect": "reflect",
        "replicate": "edge",
        "circular": "wrap",
    }
    padded = np.pad(x, pad, mode=numpy_mode[mode])
    rng = np.random.default_rng(seed)
    n, _, h, w = padded.shape
    tops = rng.integers(0, h - size[0] + 1, size=n)
    lefts = rng.integers(0, w - size[1] + 1, size=n)
    out = np.empty((n, x.shape[1], *size))
    for k in range(n):
        out[k] = padded[k, :, tops[k] : tops[k] + size[0], lefts[k] : lefts[k] + size[1]]
    return out


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_random_crop_matches_the_reference(backend: BackendCase, mode: str) -> None:
    host = _batch()
    x = xpnet.asarray(host)
    out = T.RandomCrop((5, 6), padding=2, padding_mode=mode)(x, rng=7)
    expected = _crop_reference(host, (5, 6), (2, 2), mode, 7)
    np.testing.assert_array_equal(to_numpy(out), expected)
    # Without padding, a full-size crop is the identity.
    same = T.RandomCrop((6, 7))(x, rng=1)
    np.testing.assert_array_equal(to_numpy(same), host)


@pytest.mark.parametrize("kind", ["horizontal", "vertical"])
def test_random_flip_matches_the_reference(backend: BackendCase, kind: str) -> None:
    host = _batch((8, 2, 3, 4))
    flip = T.RandomHorizontalFlip(0.5) if kind == "horizontal" else T.RandomVerticalFlip(0.5)
    out = to_numpy(flip(xpnet.asarray(host), rng=3))
    chosen = np.random.default_rng(3).random(8) < 0.5
    assert 0 < chosen.sum() < 8  # the seed flips some images and keeps others
    for k in range(8):
        axis = -1 if kind == "horizontal" else -2
        expected = np.flip(host[k], axis=axis) if chosen[k] else host[k]
        np.testing.assert_array_equal(out[k], expected)
    assert (
        to_numpy(T.RandomHorizontalFlip(0.0)(xpnet.asarray(host), rng=0)).tolist() == host.tolist()
    )


def test_compose_with_normalize_is_the_same_on_every_backend(backend: BackendCase) -> None:
    host = np.random.default_rng(2).random((4, 3, 8, 8))
    augment = T.Compose(
        [
            T.RandomCrop(8, padding=2),
            T.RandomHorizontalFlip(),
            T.Normalize(data.CIFAR10_MEAN, data.CIFAR10_STD),
        ]
    )
    out = to_numpy(augment(xpnet.asarray(host), rng=11))
    # The reference draws in the same order from one generator: crop offsets, then flips.
    rng = np.random.default_rng(11)
    padded = np.pad(host, ((0, 0), (0, 0), (2, 2), (2, 2)))
    tops, lefts = rng.integers(0, 5, size=4), rng.integers(0, 5, size=4)
    flips = rng.random(4) < 0.5
    mean = np.array(data.CIFAR10_MEAN)[:, None, None]
    std = np.array(data.CIFAR10_STD)[:, None, None]
    for k in range(4):
        image = padded[k, :, tops[k] : tops[k] + 8, lefts[k] : lefts[k] + 8]
        image = image[:, :, ::-1] if flips[k] else image
        np.testing.assert_allclose(out[k], (image - mean) / std, rtol=1e-14, atol=1e-14)


def test_loader_augments_reproducibly(backend: BackendCase) -> None:
    rng = np.random.default_rng(0)
    dataset = data.Dataset(
        rng.integers(0, 256, (10, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, 10), 10
    )
    augment = T.Compose([T.RandomCrop(8, padding=1), T.RandomHorizontalFlip()])

    def epoch(loader: data.DataLoader) -> list[np.ndarray]:
        return [to_numpy(x) for x, _ in loader]

    loader = data.DataLoader(
        dataset, batch_size=4, shuffle=True, seed=5, transform=augment, dtype="float64"
    )
    first, second = epoch(loader), epoch(loader)
    assert len(first) == 3 and not np.array_equal(first[0], second[0])  # a new draw per epoch
    again = data.DataLoader(
        dataset, batch_size=4, shuffle=True, seed=5, transform=augment, dtype="float64"
    )
    for a, b in zip(first, epoch(again), strict=True):
        np.testing.assert_array_equal(a, b)
    # A batch is the loader's plain batch put through the transform with that batch's
    # generator: ([seed, epoch, batch, 1]).
    plain = data.DataLoader(dataset, batch_size=4, shuffle=True, seed=5, dtype="float64")
    for index, (x, _) in enumerate(plain):
        expected = augment(x, rng=np.random.default_rng([5, 0, index, 1]))
        np.testing.assert_array_equal(first[index], to_numpy(expected))


def test_loader_augments_before_normalising(backend: BackendCase) -> None:
    """torchvision's order: constant padding is black (0 before normalising), so a padded
    position reads (0 - mean) / std."""
    images = np.full((4, 3, 4, 4), 255, dtype=np.uint8)
    dataset = data.Dataset(images, np.zeros(4, np.int64), 1)
    mean, std = (0.5, 0.25, 0.75), (0.5, 0.5, 0.25)
    crop = T.RandomCrop(4, padding=3)  # wide enough that some image shows padding
    loader = data.DataLoader(dataset, 4, mean=mean, std=std, transform=crop, dtype="float64")
    x = to_numpy(next(iter(loader))[0])
    for c in range(3):
        values = set(np.round(np.unique(x[:, c]), 12))
        assert values <= {round((1 - mean[c]) / std[c], 12), round(-mean[c] / std[c], 12)}
        assert round(-mean[c] / std[c], 12) in values


def test_loader_normalises_per_channel(backend: BackendCase) -> None:
    images = np.random.default_rng(1).integers(0, 256, (3, 3, 4, 4), dtype=np.uint8)
    dataset = data.Dataset(images, np.zeros(3, np.int64), 1)
    loader = data.DataLoader(
        dataset, batch_size=3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0), dtype="float64"
    )
    x, _ = next(iter(loader))
    mean = np.array([0.1, 0.2, 0.3])[:, None, None]
    std = np.array([0.5, 0.25, 2.0])[:, None, None]
    np.testing.assert_allclose(to_numpy(x), (images / 255.0 - mean) / std, rtol=1e-14)
    with pytest.raises(
        ValueError, match=r"mean: expected one value or one per channel \(3\), got 2"
    ):
        data.DataLoader(dataset, mean=(0.1, 0.2))
    with pytest.raises(ValueError, match="std: expected positive numbers"):
        data.DataLoader(dataset, std=(1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="transform: expected a callable"):
        data.DataLoader(dataset, transform="flip")


def test_augmented_batches_cost_no_host_sync() -> None:
    register_counting_backend("counting_augment")
    try:
        rng = np.random.default_rng(0)
        dataset = data.Dataset(
            rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 64), 10
        )
        augment = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.Normalize(data.CIFAR10_MEAN, data.CIFAR10_STD),
            ]
        )
        loader = data.DataLoader(dataset, batch_size=32, shuffle=True, transform=augment)
        with xpnet.use_backend("counting_augment"):
            batches = iter(loader)
            next(batches)  # the first batch moves Normalize's constants once
            with count_ops() as counts:
                x, _ = next(batches)
        assert counts.syncs == 0, counts.sync_sites
        assert tuple(x.shape) == (32, 3, 32, 32)
        # scale (2), crop (the fill value appended: 3, one gather), flip (one gather), normalise
        # (2).
        assert counts.launches <= 9, counts.by_operation
    finally:
        xpnet.unregister_backend("counting_augment")


def test_transform_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="size: expected a non-negative int or a pair"):
        T.RandomCrop((3, 3, 3))
    with pytest.raises(ValueError, match="size: expected positive sizes"):
        T.RandomCrop(0)
    with pytest.raises(ValueError, match="padding_mode: expected 'constant'"):
        T.RandomCrop(3, padding_mode="mirror")
    with pytest.raises(ValueError, match="p: expected a probability"):
        T.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="std: expected positive values"):
        T.Normalize(0.5, 0.0)
    x = xpnet.asarray(np.zeros((2, 3, 4, 4)))
    with pytest.raises(
        ValueError, match=r"RandomCrop: size \(5, 5\) is larger than the padded image \(4, 4\)"
    ):
        T.RandomCrop(5)(x)
    with pytest.raises(ValueError, match=r"RandomCrop: expected a batch \(N, C, H, W\)"):
        T.RandomCrop(2)(xpnet.asarray(np.zeros((3, 4, 4))))
    with pytest.raises(ValueError, match=r"reflect padding \(4, 4\) must be smaller"):
        T.RandomCrop(4, padding=4, padding_mode="reflect")(x)
    tiny = xpnet.asarray(np.zeros((1, 1, 1, 4)))
    with pytest.raises(ValueError, match=r"reflect padding \(1, 1\) must be smaller"):
        T.RandomCrop((1, 4), padding=1, padding_mode="reflect")(tiny)  # F.pad's rule
    pixels = xpnet.asarray(np.full((2, 3, 4, 4), 7, dtype=np.uint8))
    with pytest.raises(ValueError, match="fill: 300.5 is not a uint8 value"):
        T.RandomCrop(4, padding=1, fill=300.5)(pixels)
    with pytest.raises(TypeError, match="Normalize: expected a floating-point batch, got uint8"):
        T.Normalize(0.5, 0.25)(pixels)
    cropped = T.RandomCrop(4, padding=1, fill=9)(pixels, rng=0)
    assert cropped.dtype == pixels.dtype and set(np.unique(to_numpy(cropped))) <= {7, 9}
    with pytest.raises(ValueError, match="Normalize: mean has 2 values for 3 channels"):
        T.Normalize((0.1, 0.2), 1.0)(x)
    with pytest.raises(TypeError, match="transforms: expected callables"):
        T.Compose([T.RandomHorizontalFlip(), 3])
