"""xpnet.testing: the op-counting backend counts what it claims, and computes what NumPy does.

Each rule is checked on a case whose count follows from the rule by hand: an elementwise
op is one launch, a view none, CuPy's concatenate of up to eight arrays one copy each and of
more one kernel after a transfer, CuPy's matmul one GEMM unless an operand is strided or a
batch axis broadcasts; every host read is a sync.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import xpnet
from xpnet.backends import CPU_PROFILE, GPU_PROFILE, device_profile
from xpnet.testing import count_ops, register_counting_backend


@pytest.fixture
def counting() -> Iterator[object]:
    register_counting_backend("counting_test")
    with xpnet.use_backend("counting_test") as active:
        yield active.xp
    xpnet.unregister_backend("counting_test")


def _array(xp: object, shape: tuple[int, ...]) -> object:
    return xpnet.asarray(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))


def test_results_equal_numpys(counting) -> None:
    xp = counting
    host = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    a = xpnet.asarray(host)
    result = xp.sum(xp.exp(a) * 2.0 - (a.mT @ a)[:3, :], axis=0)
    expected = np.sum(np.exp(host) * 2.0 - (host.T @ host)[:3, :], axis=0)
    np.testing.assert_allclose(xpnet.to_numpy(result), expected, rtol=1e-6)
    assert result.device == a.device and result.dtype == xp.float32


def test_elementwise_ops_launch_once_and_views_never(counting) -> None:
    xp = counting
    a = _array(xp, (4, 6))
    with count_ops() as counts:
        b = a + 1.0  # 1
        c = xp.exp(b)  # 1
        d = xp.reshape(c, (6, 4))  # view
        e = xp.permute_dims(c, (1, 0))  # view
        f = e[1:, ::2]  # view
        xp.reshape(e, (24,))  # a copy: the transposed view cannot be flattened in place
    assert (counts.calls, counts.launches, counts.transfers, counts.syncs) == (6, 3, 0, 0)
    assert counts.by_operation == {"__add__": 1, "exp": 1, "reshape": 1}
    assert d.shape == (6, 4) and f.shape == (5, 2)


def test_concat_follows_cupys_rule(counting) -> None:
    xp = counting
    small = [_array(xp, (2, 3)) for _ in range(9)]
    with count_ops() as counts:
        xp.concat(small[:8])  # eight arrays: one copy kernel each
    assert (counts.launches, counts.transfers) == (8, 0)
    with count_ops() as counts:
        xp.stack(small)  # nine small arrays: one kernel after the pointer table
    assert (counts.launches, counts.transfers) == (1, 1)


def test_matmul_follows_cupys_rule(counting) -> None:
    xp = counting
    a, b = _array(xp, (5, 4)), _array(xp, (4, 3))
    batch, weights = _array(xp, (2, 3, 5, 4)), _array(xp, (3, 4, 6))
    with count_ops() as counts:
        a @ b  # 2-D: one GEMM
        xp.matrix_transpose(b) @ xp.matrix_transpose(a)  # transposed 2-D: still one
        a[:, ::2] @ b[:2, :]  # a strided operand: a copy, then the GEMM
    assert counts.launches == 4
    with count_ops() as counts:
        xp.matmul(batch, weights)  # broadcast over the leading axis: 3 tables x 2 + 1
    assert counts.launches == 7
    with count_ops() as counts:
        batch @ xp.broadcast_to(weights, (2, 3, 4, 6))  # strided (stride-0) operand: copy
    assert counts.launches == 2


def test_host_reads_and_data_dependent_shapes_are_syncs(counting) -> None:
    xp = counting
    a = _array(xp, (4,))
    with count_ops() as counts:
        bool(xp.any(a > 2.0))
        float(a[0])
        int(xp.max(a))
        a[1].item()
        xpnet.to_numpy(a)
        xp.nonzero(a > 1.0)
        a[a > 1.0]
    assert counts.syncs == 7
    assert counts.sync_sites == [
        "bool", "float", "int", "item", "to_numpy", "nonzero", "boolean index"
    ]  # fmt: skip


def test_arrays_from_host_data_are_transfers(counting) -> None:
    xp = counting
    with count_ops() as counts:
        xpnet.asarray([1.0, 2.0])
        xp.asarray(3.0, dtype=xp.float32)
        xp.zeros((3,))  # made on the device: a fill kernel, no transfer
    assert (counts.transfers, counts.launches) == (2, 1)


def test_sections_count_their_part_and_the_total_everything(counting) -> None:
    xp = counting
    a = _array(xp, (3,))
    with count_ops() as counts:
        with counts.section("first"):
            a + a
            with counts.section("inner"):
                a * a
        with counts.section("first"):
            a - a
        xp.sqrt(a)
    assert counts.launches == 4
    assert counts.sections["first"].launches == 3
    assert counts.sections["inner"].launches == 1


def test_nothing_is_counted_outside_count_ops(counting) -> None:
    a = _array(counting, (3,))
    a + a
    with count_ops() as counts:
        pass
    assert counts.calls == 0


def test_the_backend_reports_its_profile() -> None:
    register_counting_backend("counting_cpu_test", CPU_PROFILE)
    register_counting_backend("counting_gpu_test", GPU_PROFILE)
    try:
        with xpnet.use_backend("counting_cpu_test"):
            assert device_profile(xpnet.asarray([1.0])) == CPU_PROFILE
        with xpnet.use_backend("counting_gpu_test"):
            assert device_profile(xpnet.asarray([1.0])) == GPU_PROFILE
    finally:
        xpnet.unregister_backend("counting_cpu_test")
        xpnet.unregister_backend("counting_gpu_test")
