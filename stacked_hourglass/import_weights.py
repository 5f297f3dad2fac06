r"""Imports a PyTorch stacked-hourglass checkpoint as a model directory (weights.importer).

  python -m stacked_hourglass.import_weights --format=princeton|bearpaw|auto --checkpoint=FILE \
      --model_dir=DIR [--dataset=mpii] [--input_mean=r,g,b|MEAN_FILE] [--verify=FILE.io.npz]

Sources: princeton-vl/pytorch_stacked_hourglass and bearpaw/pytorch-pose checkpoints (zip or
legacy format; read without torch, refusing anything but tensors). The size is inferred from the
tensors. bearpaw networks need --input_mean: its data/mpii/mean.pth.tar or three numbers.
DIR (new or empty) gets config.json, model.keras and import.json, for evaluate/export.
--verify runs the imported model on a reference NAME.io.npz; exit 1 if a stack differs > 1e-4.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.joints import JOINT_SET_NAMES
from stacked_hourglass.utils import cli

TOLERANCE = 1e-4


def define_flags(fv: flags.FlagValues) -> None:
    def string(name, help_text):
        flags.DEFINE_string(name, None, help_text, flag_values=fv)

    flags.DEFINE_enum(
        "format", "auto", ["princeton", "bearpaw", "auto"], "Source layout.", flag_values=fv
    )
    string("checkpoint", "The PyTorch checkpoint file.")
    string("model_dir", "Model directory to create (must be new or empty).")
    flags.DEFINE_enum(
        "dataset", "mpii", list(JOINT_SET_NAMES), "Joint set the checkpoint predicts.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_list(
        "input_mean", None, "RGB mean the source subtracts (r,g,b) or a mean.pth.tar path.",
        flag_values=fv,
    )  # fmt: skip
    string("verify", "Reference NAME.io.npz: print the max |diff| per stack.")


def _input_mean(values):
    if not values:
        return None
    if len(values) == 1:
        return values[0]  # a mean file
    try:
        return [float(v) for v in values]
    except ValueError:
        raise cli.UsageError(f"--input_mean: expected r,g,b or a file, got {values}") from None


def run(fv: flags.FlagValues) -> int:
    cli.require(fv, "checkpoint", "model_dir")
    from stacked_hourglass.weights import importer  # flag errors need not wait for TensorFlow

    result = importer.import_checkpoint(
        fv["format"].value,
        fv["checkpoint"].value,
        fv["model_dir"].value,
        dataset=fv["dataset"].value,
        input_mean=_input_mean(fv["input_mean"].value),
    )
    arch = ", ".join(f"{k}={v}" for k, v in result.architecture.items())
    print(f"Imported {result.format} checkpoint: {arch}")
    mean = ", ".join(f"{m:.6g}" for m in result.input_mean)
    print(f"Input mean ({result.input_mean_source}): {mean}")
    names = ", ".join(result.unused[:4]) + (", ..." if len(result.unused) > 4 else "")
    print(f"Unused tensors: {len(result.unused)}" + (f" ({names})" if result.unused else ""))
    print(f"Wrote {result.model_dir} in {result.seconds:.1f} s")
    if not fv["verify"].value:
        return 0
    diffs = importer.verify(result.model, fv["verify"].value, result.format)
    for stack, diff in diffs.items():
        print(f"heatmaps_{stack}: max |diff| = {diff:.3g}")
    worst = max(diffs.values())
    if worst > TOLERANCE:
        return cli.error("import_weights", f"max |diff| {worst:.3g} exceeds {TOLERANCE:g}")
    return 0


def main(argv=None) -> int:
    return cli.main("import_weights", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
