"""The stacked hourglass network: `build_model`, its config, and its size and cost.

from stacked_hourglass import model
net = model.build_model(num_stacks=8)
"""

from stacked_hourglass.model.hourglass import (
    ModelConfig,
    build_model,
    config_from_model,
    count_multiply_adds,
    count_parameters,
    output_name,
)

__all__ = [
    "ModelConfig",
    "build_model",
    "config_from_model",
    "count_multiply_adds",
    "count_parameters",
    "output_name",
]
