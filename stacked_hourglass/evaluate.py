r"""Scores pose predictions with PCK / PCKh (the paper's tables and curves).

Released predictions (a file of coordinates against a ground-truth file):

  python -m stacked_hourglass.evaluate --predictions=FILE --ground_truth=FILE \
      [--dataset=mpii] [--head=head_top|neck_and_top] [--threshold=T] [--output_dir=DIR]

  FILE: `.h5` (pose-hg layout, `preds`) or `.mat` (`preds`), in [N,K,2], [K,2,N] or [2,K,N].
  Ground truth: `detections_our_format.mat` (normaliser 0.6 × head-box diagonal) or a pose-hg
  `.h5` (`part`, `normalize`). Coordinates are compared as stored (all released files are 1-based
  MATLAB pixels), without any offset.
  The table is printed. Files are written only when --output_dir is given: NAME.pck.json (table,
  curves, inputs, conventions) and NAME.pck_curves.png, NAME being the predictions file's stem.
  --posehg_label_filter additionally skips labels with x ≤ 1 or y ≤ 1, as pose-hg's
  `th main.lua eval` does (use with --head=neck_and_top and the pose-hg valid.h5 to reproduce it).

A trained model on TFRecords (the table in original-image pixels; with --output_dir also
NAME.preds.h5 in pose-hg's layout, 1-based, rows in source order):

  python -m stacked_hourglass.evaluate --model_dir=DIR|--saved_model=DIR --data=GLOB \
      [--dataset=mpii] [--flip_test] [--output_dir=DIR]

--dataset defaults to the model_dir's training dataset, or to the SavedModel's (its
assets/joints.json).
--decoder=quarter|dark picks the heatmap decoder of a --model_dir evaluation (default quarter); an
export (SavedModel or LiteRT) is evaluated with the decoder it was exported with.

A LiteRT model (`export --format=litert`), optionally next to its float model:

  python -m stacked_hourglass.evaluate --litert=FILE.tflite --data=GLOB [--model_dir=DIR]

prints its table and, with --model_dir, the float model's (same decoder and flip test) and a
comparison table of the two.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.joints import JOINT_SET_NAMES, get_joint_set
from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    def string(name, help_text):
        flags.DEFINE_string(name, None, help_text, flag_values=fv)

    # Released-predictions mode.
    string("predictions", "Prediction file (.h5 or .mat with `preds`); selects released mode.")
    string("ground_truth", "Ground-truth file: detections_our_format.mat or a pose-hg .h5.")
    flags.DEFINE_boolean(
        "posehg_label_filter",
        False,
        "Also skip ground-truth labels with x <= 1 or y <= 1, as pose-hg's calcDists does.",
        flag_values=fv,
    )
    # Model mode.
    string("model_dir", "Training (or weight-import) directory.")
    string("saved_model", "Exported SavedModel directory (or its versioned base).")
    string("litert", "A .tflite file from export --format=litert.")
    flags.DEFINE_enum(
        "decoder", None, ["quarter", "dark"],
        "Heatmap decoder for --model_dir (default quarter); an export uses its own.",
        flag_values=fv,
    )  # fmt: skip
    string("data", "TFRecord glob of the evaluation split.")
    flags.DEFINE_boolean(
        "flip_test", False, "Average with the heatmaps of the flipped image.", flag_values=fv
    )
    flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.", lower_bound=1, flag_values=fv)
    # Shared.
    string("output_dir", "Where NAME.pck.json and NAME.pck_curves.png go; unset: print only.")
    flags.DEFINE_enum(
        "dataset",
        None,
        list(JOINT_SET_NAMES),
        "Joint set; default: the model's training dataset (mpii for --predictions).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "head",
        "head_top",
        ["head_top", "neck_and_top"],
        "MPII 'Head' column: head_top (HRNet/mmpose/bearpaw) or the mean of upper_neck and "
        "head_top (MPII's own evaluation, pose-hg).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "threshold", None, "PCK threshold; default the dataset's (0.5 PCKh, 0.2 FLIC PCK).",
        flag_values=fv,
    )  # fmt: skip


def run(fv: flags.FlagValues) -> None:
    common = {"head": fv["head"].value, "threshold": fv["threshold"].value,
              "output_dir": fv["output_dir"].value}  # fmt: skip
    if fv["predictions"].value:
        from stacked_hourglass.evaluation import released  # numpy only: no TF start-up

        cli.require(fv, "ground_truth")
        released.run_released_evaluation(
            fv["predictions"].value,
            fv["ground_truth"].value,
            joint_set=get_joint_set(fv["dataset"].value or "mpii"),
            posehg_label_filter=fv["posehg_label_filter"].value,
            **common,
        )
        return
    from stacked_hourglass.evaluation import model_eval

    sources = {k: fv[k].value for k in ("model_dir", "saved_model", "litert")}
    model_eval.evaluate_sources(
        **sources,
        data=fv["data"].value,
        dataset=fv["dataset"].value,
        flip_test=fv["flip_test"].value,
        batch_size=fv["batch_size"].value,
        decoder=fv["decoder"].value,
        **common,
    )


def main(argv=None) -> int:
    return cli.main("evaluate", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
