r"""The paper's ablations (§5.1, Fig. 8), repeated over seeds: mean ± std tables, paired
differences with 95 % intervals, and one plot.

    python -m stacked_hourglass.ablation --flagfile=configs/ablation.flags --workdir=ablation \
        [--variants=1x2,2x1,2x1_last] [--seeds=3] [--seed_base=0] [--train_flag=--epochs=8 ...]

(configs/ablation.flags: the demo's recipe at the size where 3 seeds of the 3 default variants
train in about an hour on 2 CPU cores, on the data `python -m stacked_hourglass.demo` writes.)

Variants (name: stacks x residual modules per place, supervision):
  1x2       1 hourglass with 2 residual modules at every place
  2x1       2 stacks x 1 module: the same total depth (and nearly the same parameters) as 1x2,
            every stack supervised
  2x1_last  2 stacks x 1 module, only the last stack supervised
  Any `SxM[_last]` works; the paper compares 2x4, 4x2 and 8x1 (and 8x1_last) on MPII.

Each variant is trained --seeds times, `python -m stacked_hourglass.train --flagfile=BASE
[--train_flag values] --num_stacks=S --num_modules=M --supervise=all|last --seed=K
--model_dir=WORKDIR/VARIANT/seedK` for K = seed_base … seed_base+seeds−1 (the seed sets the
initialisation, the data order and the augmentation: runs with the same seed see the same images
in the same order), then evaluated on the validation split. A run whose summary.json exists is
reused, never retrained (nor re-evaluated once WORKDIR/VARIANT/seedK/evaluation has its
figures), so re-running with a larger --seeds only adds seeds.

Printed: per variant the mean ± sample std over seeds of the validation PCKh columns (last
stack); then, for each comparison of the paper the variants allow, the mean paired difference of
Mean PCKh over seeds with its 95 % t-interval: more stacks vs one deeper hourglass at the same
stacks × modules (2x1 − 1x2; 4x2 − 2x4, 8x1 − 2x4, 8x1 − 4x2) and intermediate vs last-stack
supervision (SxM − SxM_last). WORKDIR/ablation.png plots validation PCKh per epoch (mean ± std,
each run a faint line) next to the final PCK curves; WORKDIR/ablation.json has every run and
the statistics.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string(
        "base_flagfile", None, "Training flagfile of every variant.", flag_values=fv
    )
    flags.DEFINE_string(
        "workdir", "ablation", "WORKDIR/VARIANT/seedK: one model_dir per run.", flag_values=fv
    )
    flags.DEFINE_list(
        "variants", ["1x2", "2x1", "2x1_last"], "SxM[_last] variants.", flag_values=fv
    )
    flags.DEFINE_integer(
        "seeds", 3, "Runs per variant (seeds seed_base ... seed_base+seeds-1).", lower_bound=1,
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer("seed_base", 0, "The first seed.", lower_bound=0, flag_values=fv)
    flags.DEFINE_multi_string(
        "train_flag", [], "An extra training flag for every run (repeatable).", flag_values=fv
    )


def run(fv: flags.FlagValues) -> None:
    from stacked_hourglass.workflows import ablation_lib

    cli.require(fv, "base_flagfile")
    ablation_lib.run_ablation(
        fv["base_flagfile"].value, fv["workdir"].value, fv["variants"].value,
        fv["train_flag"].value, seeds=fv["seeds"].value, seed_base=fv["seed_base"].value,
    )  # fmt: skip


def main(argv=None) -> int:
    return cli.main("ablation", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
