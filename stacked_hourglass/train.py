r"""Trains a stacked hourglass network.

    python -m stacked_hourglass.train --flagfile=configs/mpii_8stack.flags [--model_dir=DIR] [...]

Flags given after --flagfile override it; every flag is a field of `config.ExperimentConfig`
(same name, same default). Re-running with the same --model_dir resumes from the last
checkpoint. `run_dir` lists what lands in --model_dir.
"""

from __future__ import annotations

import json

from absl import flags

from stacked_hourglass import config as config_lib
from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    config_lib.define_flags(fv)
    flags.DEFINE_string(
        "export_dir", None, "If set, export a versioned SavedModel here at the end.", flag_values=fv
    )
    flags.DEFINE_bool("export_flip_test", False, "Bake the flip test into it.", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    from stacked_hourglass.training import trainer

    config = config_lib.from_flags(fv)
    try:
        summary = trainer.train(config)
    except trainer.TrainingDiverged as e:
        return cli.error("train", str(e))
    if fv["export_dir"].value:
        from stacked_hourglass.serving import exporter

        summary["export_dir"] = exporter.export_from_model_dir(
            config.train.model_dir, fv["export_dir"].value, flip_test=fv["export_flip_test"].value
        )
    print(json.dumps({k: summary[k] for k in ("model_dir", "steps", "train_seconds")}, indent=1))
    print(trainer.format_validation(summary))
    return 0


def main(argv=None) -> int:
    return cli.main("train", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
