"""The stacked hourglass network: `build_model`, its config, and its size and cost.

from stacked_hourglass import model
net = model.build_model(num_stacks=8)
"""

from stacked_hourglass.config import ModelConfig, output_name
from stacked_hourglass.model.cost import count_multiply_adds, count_parameters
from stacked_hourglass.model.hourglass import StackedHourglass, build_model, model_config

__all__ = [
    "ModelConfig",
    "StackedHourglass",
    "build_model",
    "count_multiply_adds",
    "count_parameters",
    "model_config",
    "output_name",
]
