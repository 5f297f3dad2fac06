r"""Predicts the poses of the people in one's own images with an exported SavedModel or a LiteRT
model.

  python -m stacked_hourglass.predict --saved_model=EXPORT_DIR[/VERSION] \
      --image=FILE[,FILE...]|DIR --output_dir=DIR [--coco_results=FILE.json] \
      [--box=x1,y1,x2,y2 | --detections=FILE.json | --detector=SAVED_MODEL_DIR] \
      [--min_box_score=0.5] [--person_category=1] [--person_class=1] [--max_people=20]
  python -m stacked_hourglass.predict --litert=FILE.tflite --image=... --output_dir=DIR [...]
  python -m stacked_hourglass.predict --saved_model=...|--litert=... --video=FILE[,FILE...]|DIR \
      --output_dir=DIR [--track] [--smooth=one_euro|none] [--box=... | --detections=... | ...]
      (`serving.video_lib`: NAME.mp4 with the skeletons drawn and NAME.jsonl, a line per frame;
      needs the [video] extra, PyAV; the options: `serving.video_options`)

The people of an image are its person boxes (`serving.boxes`): the boxes a COCO detection results
file gives it (--detections), the boxes a TF2 Object Detection API SavedModel finds in it
(--detector), the one --box for every image, or, with none of these, the whole image as one
person. All the boxes of an image are cropped from one decode and run as one batch
(`Predictor.predict_people`: the SavedModel's `serving_people`; with --litert the image is
decoded and cropped on the host with the rule of `serving_box`, `serving.box_crop`). The heatmap
decoder is the export's (recorded in its metadata) and is printed.

Writes NAME.json (the people: box, box score, keypoints with scores per joint name, in 0-based
original pixels) and NAME.png (every skeleton, a colour per person) per image, prints a keypoints
table per person, and with --coco_results one COCO keypoint results file (`serving.predict_lib`).
An image with no people gets "people": [] and the plain image.

Every image is tried: a bad one (unreadable, not an image, truncated, above the pixel limit, a
--box outside it) gets one line `predict: error: FILE: reason` on stderr and no output, the others
are written, and the exit status is 1 when any failed. A detected box that does not fit its image
is skipped with one line `predict: warning: FILE: SOURCE: reason; skipped`. Errors that concern
the whole run (flags, the model, the detector, a detections file malformed or for other images,
an output path that is a file) stop it before any image, with one line.
"""

from __future__ import annotations

import os

from absl import flags

from stacked_hourglass.serving import boxes, predictor, video_options
from stacked_hourglass.utils import cli

KINDS = ("saved_model", "litert")


def define_flags(fv: flags.FlagValues) -> None:
    predictor.define_flags(fv, KINDS)
    for name, help_text in (
        ("image", "Image file(s), comma-separated, or a directory of .jpg/.png/.bmp/.gif."),
        ("output_dir", "Where NAME.json and NAME.png go."),
        ("coco_results", "Also write every person as COCO keypoint results to this JSON file."),
    ):
        flags.DEFINE_string(name, None, help_text, flag_values=fv)
    boxes.define_flags(fv)
    video_options.define_flags(fv)


def run(fv: flags.FlagValues) -> int:
    kind, path = predictor.choose_model(
        {k: fv[k].value for k in KINDS}, missing="--saved_model is required"
    )
    # TF's per-call C++ warnings (e.g. "Local rendezvous is aborting" on a failed assertion)
    # would bury the one-line error; the user can still ask for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if fv["video"].value:
        return _run_video(fv, kind, path)
    cli.require(fv, "image", "output_dir")
    # Imported here so that flag errors do not wait for TensorFlow to load.
    from stacked_hourglass.serving import predict_lib

    boxes.parse_box(fv["box"].value)  # a bad --box is a flag error, before any loading
    return predict_lib.run_images(
        kind, path, fv["image"].value, fv["output_dir"].value, fv["coco_results"].value,
        lambda: boxes.from_flags(fv),
    )  # fmt: skip


def _run_video(fv: flags.FlagValues, kind: str, path: str) -> int:
    if fv["image"].value or fv["coco_results"].value:
        raise cli.UsageError("--video takes neither --image nor --coco_results")
    cli.require(fv, "output_dir")
    options = video_options.from_flags(fv)
    boxes.parse_box(fv["box"].value)  # a bad --box is a flag error, before any loading
    from stacked_hourglass.serving import video_lib

    video_lib.import_av()  # the missing extra is said before a detector loads
    given = [f"--{n}={fv[n].value}" for n in ("box", "detections", "detector") if fv[n].value]
    return video_lib.run_videos(
        kind, path, fv["video"].value, fv["output_dir"].value, options,
        boxes.from_flags(fv), given[0] if given else "whole frame",
    )  # fmt: skip


def main(argv=None) -> int:
    return cli.main("predict", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
