"""AVID-style 2-D ConvNet audio encoder (Morgado et al., AVID-CMA supplement, Table 5).

conv 7x7 stride 2 -> residual stages (3x3 convs, BatchNorm, ReLU; stride 2 entering stages 2-3)
-> global max pool -> FC layers. Small and fast on a CPU: the pocket audio encoder uses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from .model import ModalityEncoder
from .spaces import ClipSpace


@dataclass
class ConvNetConfig:
    arch: Literal["convnet"] = "convnet"
    in_channels: int = 1
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    blocks_per_stage: int = 1
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 1])
    fc: list[int] = field(default_factory=lambda: [512, 512])
    dropout: float = 0.0
    scale: float | None = None
    preprocess: dict = field(default_factory=dict)

    def validate(self, where: str) -> None:
        from .config import ConfigError

        if len(self.channels) != len(self.strides):
            raise ConfigError(f"{where}: channels ({len(self.channels)}) and strides "
                              f"({len(self.strides)}) must have one entry per stage")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class AudioConvNet(ModalityEncoder):
    def __init__(self, modality: str, space: ClipSpace, embed_dim: int, cfg: ConvNetConfig,
                 preprocessor=None):
        super().__init__(modality, space, embed_dim, preprocessor, scale=cfg.scale)
        self.config = cfg
        c0 = cfg.channels[0]
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, c0, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        stages, cin = [], c0
        for cout, stride in zip(cfg.channels, cfg.strides):
            blocks = [BasicBlock(cin, cout, stride)]
            blocks += [BasicBlock(cout, cout, 1) for _ in range(cfg.blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.Sequential(*stages)
        head, width = [], cin
        for hidden in cfg.fc:
            head += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            width = hidden
        head.append(nn.Linear(width, embed_dim))
        self.head = nn.Sequential(*head)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.amax(x, dim=(-2, -1)))
