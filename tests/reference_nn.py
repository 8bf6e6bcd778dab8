"""Oracles for the layer tests: the same layers in torch, and torch <-> host conversions.

Each entry of :data:`LAYER_CASES` builds one xpnet layer and the torch layer it mirrors,
with the same arguments, so a test can load the torch layer's weights into the xpnet one
(``load_state_dict``) and compare outputs, gradients and buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnet import nn


@dataclass(frozen=True)
class LayerCase:
    """One xpnet layer, its torch twin (built from the ``torch`` module) and an input."""

    id: str
    xpnet: Callable[[str], nn.Module]
    torch: Callable[[Any], Any]
    input_shape: tuple[int, ...]


def _t(name: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """A builder of ``torch.nn.<name>(*args, **kwargs)`` in float64."""

    def build(torch: Any) -> Any:
        layer = getattr(torch.nn, name)(*args, **kwargs)
        return layer.double()

    return build


LAYER_CASES = [
    LayerCase(
        "conv",
        lambda d: nn.Conv2d(3, 4, 3, dtype=d, rng=0),
        _t("Conv2d", 3, 4, 3),
        (2, 3, 6, 5),
    ),
    LayerCase(
        "conv_stride_pad",
        lambda d: nn.Conv2d(2, 4, (3, 2), stride=2, padding=(1, 0), dtype=d, rng=0),
        _t("Conv2d", 2, 4, (3, 2), stride=2, padding=(1, 0)),
        (2, 2, 7, 6),
    ),
    LayerCase(
        "conv_groups_dilation_nobias",
        lambda d: nn.Conv2d(4, 6, 3, dilation=2, groups=2, bias=False, dtype=d, rng=0),
        _t("Conv2d", 4, 6, 3, dilation=2, groups=2, bias=False),
        (1, 4, 7, 7),
    ),
    LayerCase(
        "conv_same",
        lambda d: nn.Conv2d(2, 3, (3, 2), padding="same", dtype=d, rng=0),
        _t("Conv2d", 2, 3, (3, 2), padding="same"),
        (2, 2, 5, 6),
    ),
    LayerCase(
        "conv1d",
        lambda d: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2, dtype=d, rng=0),
        _t("Conv1d", 4, 6, 3, stride=2, padding=1, groups=2),
        (2, 4, 9),
    ),
    LayerCase(
        "conv1d_reflect_same",
        lambda d: nn.Conv1d(2, 3, 4, padding="same", padding_mode="reflect", dtype=d, rng=0),
        _t("Conv1d", 2, 3, 4, padding="same", padding_mode="reflect"),
        (2, 2, 7),
    ),
    LayerCase(
        "conv2d_circular",
        lambda d: nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="circular", dtype=d, rng=0),
        _t("Conv2d", 2, 3, 3, padding=(1, 2), padding_mode="circular"),
        (2, 2, 5, 6),
    ),
    LayerCase(
        "conv3d",
        lambda d: nn.Conv3d(2, 4, (2, 3, 3), stride=(1, 2, 1), padding=1, dtype=d, rng=0),
        _t("Conv3d", 2, 4, (2, 3, 3), stride=(1, 2, 1), padding=1),
        (2, 2, 4, 5, 4),
    ),
    LayerCase(
        "conv3d_replicate",
        lambda d: nn.Conv3d(2, 2, 3, padding=1, padding_mode="replicate", bias=False, dtype=d),
        _t("Conv3d", 2, 2, 3, padding=1, padding_mode="replicate", bias=False),
        (1, 2, 3, 4, 4),
    ),
    LayerCase(
        "conv_transpose1d",
        lambda d: nn.ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1, dtype=d),
        _t("ConvTranspose1d", 3, 2, 3, stride=2, padding=1, output_padding=1),
        (2, 3, 5),
    ),
    LayerCase(
        "conv_transpose2d",
        lambda d: nn.ConvTranspose2d(4, 2, 2, stride=2, dtype=d, rng=0),
        _t("ConvTranspose2d", 4, 2, 2, stride=2),
        (2, 4, 3, 4),
    ),
    LayerCase(
        "conv_transpose2d_groups_dilation",
        lambda d: nn.ConvTranspose2d(4, 6, 3, padding=1, groups=2, dilation=2, bias=False, dtype=d),
        _t("ConvTranspose2d", 4, 6, 3, padding=1, groups=2, dilation=2, bias=False),
        (1, 4, 4, 5),
    ),
    LayerCase(
        "conv_transpose3d",
        lambda d: nn.ConvTranspose3d(2, 3, (2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1), dtype=d),
        _t("ConvTranspose3d", 2, 3, (2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1)),
        (1, 2, 2, 3, 3),
    ),
    LayerCase("maxpool", lambda d: nn.MaxPool2d(2), _t("MaxPool2d", 2), (2, 3, 6, 5)),
    LayerCase(
        "maxpool_pad_ceil",
        lambda d: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        _t("MaxPool2d", 3, stride=2, padding=1, ceil_mode=True),
        (1, 2, 6, 7),
    ),
    LayerCase("avgpool", lambda d: nn.AvgPool2d(2), _t("AvgPool2d", 2), (2, 3, 6, 5)),
    LayerCase(
        "avgpool_no_pad_count",
        lambda d: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        _t("AvgPool2d", 3, 2, 1, count_include_pad=False),
        (1, 2, 7, 6),
    ),
    LayerCase(
        "adaptive_avgpool",
        lambda d: nn.AdaptiveAvgPool2d((2, 3)),
        _t("AdaptiveAvgPool2d", (2, 3)),
        (2, 3, 5, 7),
    ),
    LayerCase(
        "maxpool1d",
        lambda d: nn.MaxPool1d(3, 2, padding=1, ceil_mode=True),
        _t("MaxPool1d", 3, 2, padding=1, ceil_mode=True),
        (2, 3, 8),
    ),
    LayerCase(
        "maxpool3d",
        lambda d: nn.MaxPool3d((2, 3, 2), stride=(1, 2, 2), dilation=(2, 1, 1)),
        _t("MaxPool3d", (2, 3, 2), stride=(1, 2, 2), dilation=(2, 1, 1)),
        (2, 2, 5, 6, 4),
    ),
    LayerCase("avgpool1d", lambda d: nn.AvgPool1d(2), _t("AvgPool1d", 2), (2, 3, 7)),
    LayerCase(
        "avgpool3d",
        lambda d: nn.AvgPool3d(3, 2, 1, count_include_pad=False),
        _t("AvgPool3d", 3, 2, 1, count_include_pad=False),
        (1, 2, 5, 4, 5),
    ),
    LayerCase(
        "adaptive_avgpool1d",
        lambda d: nn.AdaptiveAvgPool1d(3),
        _t("AdaptiveAvgPool1d", 3),
        (2, 3, 7),
    ),
    LayerCase(
        "adaptive_avgpool3d",
        lambda d: nn.AdaptiveAvgPool3d((2, None, 3)),
        _t("AdaptiveAvgPool3d", (2, None, 3)),
        (1, 2, 5, 3, 4),
    ),
    LayerCase(
        "adaptive_maxpool1d",
        lambda d: nn.AdaptiveMaxPool1d(3),
        _t("AdaptiveMaxPool1d", 3),
        (2, 3, 7),
    ),
    LayerCase(
        "adaptive_maxpool2d",
        lambda d: nn.AdaptiveMaxPool2d((3, 2)),
        _t("AdaptiveMaxPool2d", (3, 2)),
        (2, 2, 5, 7),
    ),
    LayerCase(
        "adaptive_maxpool3d",
        lambda d: nn.AdaptiveMaxPool3d(2),
        _t("AdaptiveMaxPool3d", 2),
        (1, 2, 3, 5, 4),
    ),
    LayerCase(
        "upsample_bilinear",
        lambda d: nn.Upsample(scale_factor=2, mode="bilinear"),
        _t("Upsample", scale_factor=2, mode="bilinear"),
        (2, 2, 3, 4),
    ),
    LayerCase(
        "upsampling_bilinear2d",
        lambda d: nn.UpsamplingBilinear2d(size=(5, 3)),
        _t("UpsamplingBilinear2d", size=(5, 3)),
        (1, 2, 3, 4),
    ),
    LayerCase(
        "upsampling_nearest2d",
        lambda d: nn.UpsamplingNearest2d(scale_factor=3),
        _t("UpsamplingNearest2d", scale_factor=3),
        (1, 2, 2, 3),
    ),
    LayerCase("pixel_shuffle", lambda d: nn.PixelShuffle(2), _t("PixelShuffle", 2), (2, 8, 2, 3)),
    LayerCase(
        "pixel_unshuffle", lambda d: nn.PixelUnshuffle(2), _t("PixelUnshuffle", 2), (2, 2, 4, 6)
    ),
    LayerCase(
        "reflection_pad2d",
        lambda d: nn.ReflectionPad2d((1, 2, 0, 2)),
        _t("ReflectionPad2d", (1, 2, 0, 2)),
        (2, 2, 3, 4),
    ),
    LayerCase(
        "replication_pad3d",
        lambda d: nn.ReplicationPad3d(1),
        _t("ReplicationPad3d", 1),
        (1, 2, 2, 3, 2),
    ),
    LayerCase(
        "constant_pad1d",
        lambda d: nn.ConstantPad1d((2, 1), 0.5),
        _t("ConstantPad1d", (2, 1), 0.5),
        (2, 3, 4),
    ),
    LayerCase("zero_pad2d", lambda d: nn.ZeroPad2d(1), _t("ZeroPad2d", 1), (2, 2, 3, 3)),
    LayerCase("circular_pad1d", lambda d: nn.CircularPad1d(2), _t("CircularPad1d", 2), (2, 3, 4)),
    LayerCase("relu", lambda d: nn.ReLU(), _t("ReLU"), (2, 3, 4, 4)),
    LayerCase("leaky_relu", lambda d: nn.LeakyReLU(0.2), _t("LeakyReLU", 0.2), (2, 3, 4)),
    LayerCase("gelu", lambda d: nn.GELU(), _t("GELU"), (2, 3, 4)),
    LayerCase("gelu_tanh", lambda d: nn.GELU("tanh"), _t("GELU", "tanh"), (2, 3, 4)),
    LayerCase("sigmoid", lambda d: nn.Sigmoid(), _t("Sigmoid"), (2, 5)),
    LayerCase("tanh", lambda d: nn.Tanh(), _t("Tanh"), (2, 5)),
    LayerCase("softmax", lambda d: nn.Softmax(dim=1), _t("Softmax", dim=1), (3, 5, 2)),
    LayerCase("log_softmax", lambda d: nn.LogSoftmax(dim=1), _t("LogSoftmax", dim=1), (3, 5, 2)),
    LayerCase("relu6", lambda d: nn.ReLU6(inplace=True), _t("ReLU6"), (2, 3, 4)),
    LayerCase("elu", lambda d: nn.ELU(0.5), _t("ELU", 0.5), (2, 3, 4)),
    LayerCase("selu", lambda d: nn.SELU(), _t("SELU"), (2, 3, 4)),
    LayerCase("silu", lambda d: nn.SiLU(), _t("SiLU"), (2, 3, 4)),
    LayerCase("hardswish", lambda d: nn.Hardswish(), _t("Hardswish"), (2, 3, 4)),
    LayerCase("softplus", lambda d: nn.Softplus(2.0, 3.0), _t("Softplus", 2.0, 3.0), (2, 3, 4)),
    LayerCase("mish", lambda d: nn.Mish(), _t("Mish"), (2, 3, 4)),
    LayerCase("prelu", lambda d: nn.PReLU(dtype=d), _t("PReLU"), (2, 3, 4)),
    LayerCase("layer_norm", lambda d: nn.LayerNorm(4, dtype=d), _t("LayerNorm", 4), (2, 3, 4)),
    LayerCase(
        "layer_norm_2d_no_bias",
        lambda d: nn.LayerNorm((3, 4), bias=False, dtype=d),
        _t("LayerNorm", (3, 4), bias=False),
        (2, 3, 4),
    ),
    LayerCase(
        "group_norm", lambda d: nn.GroupNorm(2, 4, dtype=d), _t("GroupNorm", 2, 4), (2, 4, 3, 3)
    ),
    LayerCase(
        "instance_norm", lambda d: nn.InstanceNorm2d(3), _t("InstanceNorm2d", 3), (2, 3, 4, 4)
    ),
    LayerCase(
        "instance_norm_tracked_affine",
        lambda d: nn.InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=d),
        _t("InstanceNorm1d", 3, affine=True, track_running_stats=True),
        (2, 3, 5),
    ),
    LayerCase("batch_norm_1d", lambda d: nn.BatchNorm1d(3, dtype=d), _t("BatchNorm1d", 3), (4, 3)),
    LayerCase(
        "batch_norm_1d_sequence",
        lambda d: nn.BatchNorm1d(3, momentum=None, dtype=d),
        _t("BatchNorm1d", 3, momentum=None),
        (4, 3, 5),
    ),
    LayerCase(
        "batch_norm_3d", lambda d: nn.BatchNorm3d(2, dtype=d), _t("BatchNorm3d", 2), (2, 2, 3, 2, 2)
    ),
    LayerCase("dropout2d_p0", lambda d: nn.Dropout2d(p=0.0), _t("Dropout2d", p=0.0), (2, 3, 2, 2)),
    LayerCase("prelu_channels", lambda d: nn.PReLU(3, dtype=d), _t("PReLU", 3), (2, 3, 4, 4)),
    LayerCase("flatten", lambda d: nn.Flatten(), _t("Flatten"), (2, 3, 2, 2)),
    LayerCase("flatten_dims", lambda d: nn.Flatten(0, 1), _t("Flatten", 0, 1), (2, 3, 2, 2)),
    LayerCase("linear", lambda d: nn.Linear(5, 3, dtype=d, rng=0), _t("Linear", 5, 3), (4, 5)),
    LayerCase(
        "linear_nobias_3d",
        lambda d: nn.Linear(5, 3, bias=False, dtype=d, rng=0),
        _t("Linear", 5, 3, bias=False),
        (2, 4, 5),
    ),
    LayerCase("dropout_p0", lambda d: nn.Dropout(p=0.0), _t("Dropout", p=0.0), (3, 4)),
    LayerCase(
        "batchnorm", lambda d: nn.BatchNorm2d(3, dtype=d), _t("BatchNorm2d", 3), (4, 3, 3, 2)
    ),
    LayerCase(
        "batchnorm_no_affine",
        lambda d: nn.BatchNorm2d(3, affine=False, momentum=0.3, dtype=d),
        _t("BatchNorm2d", 3, affine=False, momentum=0.3),
        (4, 3, 3, 2),
    ),
    LayerCase(
        "batchnorm_cumulative",
        lambda d: nn.BatchNorm2d(2, momentum=None, eps=1e-3, dtype=d),
        _t("BatchNorm2d", 2, momentum=None, eps=1e-3),
        (3, 2, 2, 2),
    ),
    LayerCase(
        "batchnorm_untracked",
        lambda d: nn.BatchNorm2d(3, track_running_stats=False, dtype=d),
        _t("BatchNorm2d", 3, track_running_stats=False),
        (4, 3, 2, 2),
    ),
]


def torch_state(module: Any) -> dict[str, np.ndarray]:
    """A torch module's ``state_dict`` as host arrays (copies: torch updates in place)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def randomize_torch(module: Any, seed: int) -> None:
    """Give every floating parameter and buffer of a torch module random values.

    BatchNorm's weight, bias and running statistics start at 1 and 0; random values make
    the comparison exercise them. Conv and linear weights keep their (random) init;
    variances and scales stay positive.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if not value.is_floating_point():
                continue
            noise = torch.rand(value.shape, generator=generator, dtype=value.dtype)
            if name.endswith(("running_var", "weight")) and value.ndim == 1:
                value.copy_(0.5 + noise)
            elif name.endswith(("running_mean", "bias")):
                value.copy_(noise - 0.5)
