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

COCO keypoint results (COCO's results format, anyone's) against a COCO annotation file, scored by
pycocotools (COCO keypoint AP through OKS):

  python -m stacked_hourglass.evaluate --predictions=RESULTS.json --ground_truth=ANNOTATIONS.json \
      [--joints=FILE.json] [--output_dir=DIR]

  prints pycocotools' summary and AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl; the
  category scored is the ground truth's category with keypoints (or the results' one), or with
  --joints (a joint-set file with oks_sigmas) the category whose keypoints are its joints.
  --output_dir: NAME.coco_ap.json (figures, pycocotools' summary, inputs).

A trained model on TFRecords (the table in original-image pixels; with --output_dir also
NAME.preds.h5 in pose-hg's layout, 1-based, rows in source order):

  python -m stacked_hourglass.evaluate --model_dir=DIR|--saved_model=DIR --data=GLOB \
      [--dataset=mpii] [--flip_test] [--output_dir=DIR]

The joint set is the model's: the model_dir's config.json, the SavedModel's assets/joints.json
or the LiteRT model's FILE.json record it (--dataset overrides it with a built-in set). Records
whose manifest records another joint set are refused in one line naming both.

COCO-format records (`convert --dataset=coco`) are also scored by COCO keypoint AP (pycocotools;
`evaluation.coco_model_eval`), with the records' ground-truth boxes or with person detections:

  python -m stacked_hourglass.evaluate --model_dir=DIR --data=GLOB [--output_dir=DIR] \
      [--detections=DETECTIONS.json [--min_box_score=0.0]] [--oks_nms=0.9] \
      [--ground_truth=ANNOTATIONS.json]

  prints the PCK table and AP, AP50, AP75, APm, APl, AR (...); with --output_dir also
  NAME.keypoints.json (the results, COCO's results format) and NAME.coco_ap.json. Person score
  = box score x mean of the joint scores above 0.2, then OKS-NMS per image at --oks_nms (HRNet's
  and mmpose's settings). Ground truth: the annotation file the manifest records (its sha256
  checked), or --ground_truth.

--decoder=quarter|dark picks the heatmap decoder of a --model_dir evaluation (default quarter); an
export (SavedModel or LiteRT) is evaluated with the decoder it was exported with.

A LiteRT model (`export --format=litert`), optionally next to its float model:

  python -m stacked_hourglass.evaluate --litert=FILE.tflite --data=GLOB [--model_dir=DIR]

prints its table and, with --model_dir, the float model's (same decoder and flip test) and a
comparison table of the two.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.config import read_joint_set_file
from stacked_hourglass.evaluation import coco_eval, released, report
from stacked_hourglass.joints import get_joint_set
from stacked_hourglass.serving import predictor
from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    released.define_flags(fv)
    flags.DEFINE_string(
        "joints", None,
        "--predictions=RESULTS.json: joint-set JSON file (with oks_sigmas) of the scored "
        "category; default: the ground truth's category (COCO's 17 have pycocotools' sigmas).",
        flag_values=fv,
    )  # fmt: skip
    coco_eval.define_flags(fv)
    predictor.define_flags(fv, options=True)
    flags.DEFINE_string("data", None, "TFRecord glob of the evaluation split.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.", lower_bound=1, flag_values=fv)
    report.define_flags(fv)


def run(fv: flags.FlagValues) -> None:
    common = {k: fv[k].value for k in ("head", "threshold", "output_dir")}
    if fv["predictions"].value:
        cli.require(fv, "ground_truth")
        if fv["predictions"].value.lower().endswith(".json"):
            _score_coco_results(fv)
            return
        released.run_released_evaluation(
            fv["predictions"].value,
            fv["ground_truth"].value,
            joint_set=get_joint_set(fv["dataset"].value or "mpii"),
            posehg_label_filter=fv["posehg_label_filter"].value,
            **common,
        )
        return
    from stacked_hourglass.evaluation import model_eval  # TensorFlow: only for a model

    names = (*predictor.KINDS, "data", "dataset", "flip_test", "batch_size", "decoder")
    names += ("ground_truth", "detections", "min_box_score", "oks_nms")
    model_eval.evaluate_sources(**{k: fv[k].value for k in names}, **common)


def _score_coco_results(fv: flags.FlagValues) -> None:
    """--predictions=RESULTS.json: COCO keypoint AP of a results file (`coco_eval`)."""
    joints, dataset = fv["joints"].value, fv["dataset"].value
    joint_set = (
        read_joint_set_file(joints) if joints else get_joint_set(dataset) if dataset else None
    )
    coco_eval.run_results_evaluation(
        fv["predictions"].value,
        fv["ground_truth"].value,
        joint_set=joint_set,
        output_dir=fv["output_dir"].value,
    )


def main(argv=None) -> int:
    return cli.main("evaluate", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
