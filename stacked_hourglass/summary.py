"""Size and cost of a stacked hourglass network.

    python -m stacked_hourglass.summary [--num_stacks=8 --num_features=256 ...] [--layers]

(also `python -m stacked_hourglass.model --summary`). Prints trainable and BatchNorm parameters,
multiply-adds per image, build time and the first forward pass's time.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from stacked_hourglass import config as config_lib
from stacked_hourglass.utils import cli

_MODEL_FLAGS = ("num_stacks", "num_features", "depth", "num_modules", "input_size")


def define_flags(fv: flags.FlagValues) -> None:
    defaults = config_lib.ModelConfig()
    for section, field, _, _ in config_lib.flag_fields():
        if section == "model" and field.name in _MODEL_FLAGS:
            flags.DEFINE_integer(
                field.name, getattr(defaults, field.name), field.metadata["help"], flag_values=fv
            )
    flags.DEFINE_integer("num_joints", defaults.num_joints, "Heatmap channels K.", flag_values=fv)
    flags.DEFINE_enum("supervise", "all", ["all", "last"], "Supervised stacks.", flag_values=fv)
    flags.DEFINE_bool("summary", True, "Print size and cost (the default).", flag_values=fv)
    flags.DEFINE_bool("layers", False, "Also print the Keras layer table.", flag_values=fv)


def run(fv: flags.FlagValues) -> None:
    from stacked_hourglass.model import build_model, cost

    values = {name: fv[name].value for name in (*_MODEL_FLAGS, "num_joints")}
    model_config = config_lib.ModelConfig(
        **values, intermediate_supervision=fv["supervise"].value == "all"
    )
    report = cost.summarize(model_config)
    if fv["layers"].value:
        build_model(model_config).summary()
    report["config"] = dataclasses.asdict(model_config)
    print(cost.format_summary(report))


def main(argv=None) -> int:
    return cli.main("summary", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
