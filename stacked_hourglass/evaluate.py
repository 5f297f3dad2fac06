r"""Scores pose predictions with PCK / PCKh (the paper's tables and curves).

Released predictions (a file of coordinates against a ground-truth file):

  python -m stacked_hourglass.evaluate --predictions=FILE --ground_truth=FILE \
      [--dataset=mpii] [--head=head_top|neck_and_top] [--threshold=T] [--output_dir=DIR]

  FILE: `.h5` (pose-hg layout, `preds`) or `.mat` (`preds`), in [N,K,2], [K,2,N] or [2,K,N].
  Ground truth: `detections_our_format.mat` (normaliser 0.6 × head-box diagonal) or a pose-hg
  `.h5` (`part`, `normalize`). Coordinates are compared as stored (released files are 1-based).
  Prints the table; --output_dir: NAME.pck.json (table, curves, inputs, conventions) and
  NAME.pck_curves.png, NAME being the predictions file's stem.
  --posehg_label_filter: pose-hg's `th main.lua eval` (with --head=neck_and_top, its valid.h5).

COCO keypoint results (anyone's) against a COCO annotation file, by pycocotools' OKS-based AP:

  python -m stacked_hourglass.evaluate --predictions=RESULTS.json --ground_truth=ANNOTATIONS.json \
      [--joints=FILE.json] [--output_dir=DIR]

  prints pycocotools' summary and AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl of the ground
  truth's category with keypoints (--joints: the one whose keypoints are that joint-set file's);
  --output_dir: NAME.coco_ap.json (figures, pycocotools' summary, inputs).

A trained model on TFRecords (the table in original-image pixels; with --output_dir also
NAME.preds.h5 in pose-hg's layout, 1-based, rows in source order):

  python -m stacked_hourglass.evaluate --model_dir=DIR|--saved_model=DIR --data=GLOB \
      [--dataset=mpii] [--flip_test] [--output_dir=DIR]

The joint set is the one the model records (--dataset: a built-in set instead; records whose
manifest records another set are refused, naming both). --decoder=quarter|dark: a --model_dir's
heatmap decoder (an export keeps its own).

COCO-format records (`convert --dataset=coco`) are also scored by COCO keypoint AP (pycocotools;
`evaluation.coco_model_eval`), with the records' ground-truth boxes or with person detections:

  python -m stacked_hourglass.evaluate --model_dir=DIR --data=GLOB [--output_dir=DIR] \
      [--detections=DETECTIONS.json [--min_box_score=0.0]] [--oks_nms=0.9] [--ground_truth=FILE]

  prints the PCK table and AP, AP50, ... (--output_dir: NAME.keypoints.json in COCO's results
  format, NAME.coco_ap.json). Person score = box score x mean joint score above 0.2, then OKS-NMS
  per image (HRNet's and mmpose's settings). Ground truth: the annotation file the manifest
  records (sha256 checked), or --ground_truth.

A LiteRT model (`export --format=litert`), with --model_dir also the float model's table (same
decoder and flip test) and a comparison of the two:

  python -m stacked_hourglass.evaluate --litert=FILE.tflite --data=GLOB [--model_dir=DIR]
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.evaluation import coco_eval, released, report
from stacked_hourglass.joints import get_joint_set
from stacked_hourglass.serving import predictor
from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    released.define_flags(fv)
    coco_eval.define_flags(fv)
    predictor.define_flags(fv, options=True)
    flags.DEFINE_string("data", None, "TFRecord glob of the evaluation split.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.", lower_bound=1, flag_values=fv)
    report.define_flags(fv)


def run(fv: flags.FlagValues) -> None:
    common = {k: fv[k].value for k in ("head", "threshold", "output_dir")}
    if fv["predictions"].value:
        cli.require(fv, "ground_truth")
        files = fv["predictions"].value, fv["ground_truth"].value
        if files[0].lower().endswith(".json"):
            joint_set = coco_eval.results_joint_set(fv["joints"].value, fv["dataset"].value)
            coco_eval.run_results_evaluation(
                *files, joint_set=joint_set, output_dir=common["output_dir"]
            )
        else:
            joint_set = get_joint_set(fv["dataset"].value or "mpii")
            posehg = fv["posehg_label_filter"].value
            released.run_released_evaluation(
                *files, joint_set=joint_set, posehg_label_filter=posehg, **common
            )
        return
    from stacked_hourglass.evaluation import model_eval  # TensorFlow: only for a model

    names = (*predictor.KINDS, "data", "dataset", "flip_test", "batch_size", "decoder")
    names += ("ground_truth", "detections", "min_box_score", "oks_nms")
    model_eval.evaluate_sources(**{k: fv[k].value for k in names}, **common)


def main(argv=None) -> int:
    return cli.main("evaluate", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
