"""Stacked Hourglass Networks for Human Pose Estimation (Newell, Yang, Deng, ECCV 2016)."""

__version__ = "0.1.0"
