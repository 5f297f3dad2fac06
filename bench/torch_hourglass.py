"""A PyTorch definition of the package's stacked hourglass network, for benchmarks only.

Mirrors `stacked_hourglass/model/hourglass.py` layer for layer (one residual module per place,
intermediate supervision): stem conv7x7/2 (64) + BN + ReLU -> residual(128) -> max-pool 2 ->
residual(128) -> residual(F); N hourglasses of the given depth; per stack residual -> 1x1 conv +
BN + ReLU ("features") -> 1x1 conv to K heatmaps; between stacks x + conv1x1(features) +
conv1x1(heatmaps). Convolutions have biases, BatchNorm eps 1e-5 and momentum 0.1 (Keras 0.9).
Weights use Torch's default conv init, U(+-1/sqrt(fan_in)) -- the same bound as the package's
Keras initializer -- with zero biases as in Keras. Tensors are NCHW; `channels_last=True` stores
them NHWC in memory.

    python bench/torch_hourglass.py   # prints (and checks) the 8 x 256 x 16 parameter count

Needs torch (optional, e.g. `pip install torch==2.13.0`); not imported by the package.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

# Trainable parameters of the package's model at 8 stacks x 256 features x 16 joints.
PAPER_TRAINABLE_PARAMETERS = 25_434_112


def _conv(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2, bias=True)
    nn.init.zeros_(conv.bias)
    return conv


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1(F/2)-BN-ReLU-conv3x3(F/2)-BN-ReLU-conv1x1(F)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        half = c_out // 2
        self.bn1, self.conv1 = _bn(c_in), _conv(c_in, half, 1)
        self.bn2, self.conv2 = _bn(half), _conv(half, half, 3)
        self.bn3, self.conv3 = _bn(half), _conv(half, c_out, 1)
        self.skip = _conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return (x if self.skip is None else self.skip(x)) + y


class Hourglass(nn.Module):
    """up1 = res(x); low = res(pool(x)) -> [hourglass(depth-1) | res] -> res -> upsample x2."""

    def __init__(self, depth: int, features: int):
        super().__init__()
        self.up1 = Residual(features, features)
        self.low1 = Residual(features, features)
        self.low2 = Hourglass(depth - 1, features) if depth > 1 else Residual(features, features)
        self.low3 = Residual(features, features)

    def forward(self, x):
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="nearest")


class StackedHourglass(nn.Module):
    """Image [B, 3, S, S] -> list of N heatmaps [B, K, S/4, S/4] (one per stack)."""

    def __init__(
        self, num_stacks: int = 8, num_features: int = 256, depth: int = 4, num_joints: int = 16
    ):
        super().__init__()
        f, k = num_features, num_joints
        self.stem = nn.Sequential(
            _conv(3, 64, 7, stride=2),
            _bn(64),
            nn.ReLU(),
            Residual(64, 128),
            nn.MaxPool2d(2),
            Residual(128, 128),
            Residual(128, f),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, f) for _ in range(num_stacks))
        self.residuals = nn.ModuleList(Residual(f, f) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(_conv(f, f, 1), _bn(f), nn.ReLU()) for _ in range(num_stacks)
        )
        self.heatmaps = nn.ModuleList(_conv(f, k, 1) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(_conv(f, f, 1) for _ in range(num_stacks - 1))
        self.merge_heatmaps = nn.ModuleList(_conv(k, f, 1) for _ in range(num_stacks - 1))

    def forward(self, image):
        x = self.stem(image)
        outputs = []
        for i, hourglass in enumerate(self.hourglasses):
            features = self.features[i](self.residuals[i](hourglass(x)))
            heatmaps = self.heatmaps[i](features)
            outputs.append(heatmaps)
            if i < len(self.merge_features):
                x = x + self.merge_features[i](features) + self.merge_heatmaps[i](heatmaps)
        return outputs


def build(
    num_stacks: int = 8,
    num_features: int = 256,
    depth: int = 4,
    num_joints: int = 16,
    channels_last: bool = False,
) -> StackedHourglass:
    """The network in train mode, in channels-last memory format if asked."""
    model = StackedHourglass(num_stacks, num_features, depth, num_joints)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main() -> None:
    model = build(8, 256, 4, 16, channels_last=False)
    trainable = count_trainable(model)
    print(f"8 stacks x 256 features x 16 joints: {trainable:,} trainable parameters")
    assert trainable == PAPER_TRAINABLE_PARAMETERS, (trainable, PAPER_TRAINABLE_PARAMETERS)
    outputs = build(2, 64, 4, 16)(torch.zeros(1, 3, 256, 256))
    print(f"2 stacks x 64 features, 256x256: {len(outputs)} x {list(outputs[-1].shape)}")


if __name__ == "__main__":
    main()
