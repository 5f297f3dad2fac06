r"""The paper's ablations (§5.1, Fig. 8), on any dataset, as one table and one plot.

    python -m stacked_hourglass.ablation --base_flagfile=configs/demo.flags --workdir=ablation \
        [--variants=1x2,2x1,2x1_last] [--train_flag=--epochs=8 --train_flag=--lr_drop_epochs=6,7]

Variants (name: stacks x residual modules per place, supervision):
  1x2       1 hourglass with 2 residual modules at every place
  2x1       2 stacks x 1 module: the same total depth (and nearly the same parameters) as 1x2,
            every stack supervised
  2x1_last  2 stacks x 1 module, only the last stack supervised
  Any `SxM[_last]` works; the paper compares 2x4, 4x2 and 8x1 (and 8x1_last) on MPII. The
  defaults are that comparison at the demo's size (two hourglasses' worth of depth), which a
  2-core CPU trains in under 30 minutes with the --train_flag values above.

Each variant is trained by `python -m stacked_hourglass.train --flagfile=... --num_stacks=S
--num_modules=M --supervise=all|last --model_dir=WORKDIR/NAME` (a finished variant is not
retrained: the trainer resumes and finds nothing left to do). Then the validation PCKh of each
variant's last stack is printed as one table, and WORKDIR/ablation.png plots validation PCKh per
epoch (the paper's Fig. 8, left) next to the final PCK curves; WORKDIR/ablation.json has it all.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string(
        "base_flagfile", None, "Training flagfile of every variant.", flag_values=fv
    )
    flags.DEFINE_string(
        "workdir", "ablation", "One model_dir per variant goes here.", flag_values=fv
    )
    flags.DEFINE_list(
        "variants", ["1x2", "2x1", "2x1_last"], "SxM[_last] variants.", flag_values=fv
    )
    flags.DEFINE_multi_string(
        "train_flag", [], "An extra training flag for every variant (repeatable).", flag_values=fv
    )


def run(fv: flags.FlagValues) -> None:
    from stacked_hourglass.workflows import ablation

    cli.require(fv, "base_flagfile")
    ablation.run_ablation(
        fv["base_flagfile"].value, fv["workdir"].value, fv["variants"].value,
        fv["train_flag"].value,
    )  # fmt: skip


def main(argv=None) -> int:
    return cli.main("ablation", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
