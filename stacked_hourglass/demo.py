r"""The whole product in one command, on synthetic people (no download).

    python -m stacked_hourglass.demo [--workdir=demo_workdir] [--demo_flagfile=FILE]

1. writes synthetic TFRecords to WORKDIR/tfrecords (skipped when they exist),
2. trains with the packaged configs/demo.flags into WORKDIR/model and exports WORKDIR/export/1,
3. evaluates the model on the held-out split (table, PCK curves, pose-hg style predictions),
4. predicts on a held-out image with the exported SavedModel (WORKDIR/predictions/*.png),
5. writes WORKDIR/summary.json: the validation PCKh table, the training wall time, paths.

Each step after the first runs the command a user would type (printed before it runs), so the
demo doubles as a walkthrough of the command lines.
"""

from __future__ import annotations

import os

from absl import flags

from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("workdir", "demo_workdir", "Where everything is written.", flag_values=fv)
    flags.DEFINE_string(
        "demo_flagfile", None, "Training flagfile (default: the packaged demo.flags).",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer("num_train", 4000, "Synthetic training people.", flag_values=fv)
    flags.DEFINE_integer("num_valid", 500, "Synthetic held-out people.", flag_values=fv)
    flags.DEFINE_integer(
        "num_workers", min(2, os.cpu_count() or 1), "Conversion threads.", flag_values=fv
    )
    flags.DEFINE_multi_string(
        "train_flag", [], "An extra training flag (repeatable), e.g. --train_flag=--epochs=8.",
        flag_values=fv,
    )  # fmt: skip


def run(fv: flags.FlagValues) -> None:
    from stacked_hourglass.workflows import demo_lib

    demo_lib.run_demo(
        fv["workdir"].value,
        fv["demo_flagfile"].value,
        fv["num_train"].value,
        fv["num_valid"].value,
        fv["num_workers"].value,
        tuple(fv["train_flag"].value),
    )


def main(argv=None) -> int:
    return cli.main("demo", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
