r"""Predicts poses on one's own images with an exported SavedModel or a LiteRT model.

  python -m stacked_hourglass.predict --saved_model=EXPORT_DIR[/VERSION] \
      --image=FILE[,FILE...]|DIR [--box=x1,y1,x2,y2] --output_dir=DIR
  python -m stacked_hourglass.predict --litert=FILE.tflite --image=... [--box=...] --output_dir=DIR
  python -m stacked_hourglass.predict --saved_model=...|--litert=... --video=FILE[,FILE...]|DIR \
      --output_dir=DIR [--track] [--smooth=one_euro|none] (`serving.video_lib`: NAME.mp4 with the
      skeletons drawn and NAME.jsonl, a line per frame; needs the [video] extra, PyAV)

With --litert the image is decoded and cropped on the host (`serving.box_crop`, the crop rule of
the SavedModel's `serving_box`) and the crop goes through the LiteRT interpreter. The heatmap
decoder is the export's (recorded in its metadata) and is printed.

Writes NAME.json (joint name -> x, y, score in 0-based original pixels, image size, box) and
NAME.png (skeleton overlay) per image and prints the keypoints table. Without --box the whole
image is the person box; with it, the same box is used for every image.

Every image is tried: a bad one (unreadable, not an image, truncated, above the pixel limit, a box
outside it) gets one line `predict: error: FILE: reason` on stderr and no output, the others are
written, and the exit status is 1 when any failed. Errors that concern the whole run (flags, the
model, an output path that is a file) stop it before any image, with one line.
"""

from __future__ import annotations

import os

from absl import flags

from stacked_hourglass.serving import predictor, video_options
from stacked_hourglass.utils import cli

KINDS = ("saved_model", "litert")


def define_flags(fv: flags.FlagValues) -> None:
    predictor.define_flags(fv, KINDS)
    for name, help_text in (
        ("image", "Image file(s), comma-separated, or a directory of .jpg/.png/.bmp/.gif."),
        ("box", "Person box x1,y1,x2,y2 in original pixels (default: the whole image)."),
        ("output_dir", "Where NAME.json and NAME.png go."),
    ):
        flags.DEFINE_string(name, None, help_text, flag_values=fv)
    video_options.define_flags(fv)


def run(fv: flags.FlagValues) -> int:
    kind, path = predictor.choose_model(
        {k: fv[k].value for k in KINDS}, missing="--saved_model is required"
    )
    if fv["video"].value:
        return _run_video(fv, kind, path)
    cli.require(fv, "image", "output_dir")
    # TF's per-call C++ warnings (e.g. "Local rendezvous is aborting" on a failed assertion)
    # would bury the one-line error; the user can still ask for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Imported here so that flag errors do not wait for TensorFlow to load.
    from stacked_hourglass.serving import client

    box = client.parse_box(fv["box"].value)
    paths = client.list_images(fv["image"].value)
    names = client.output_names(paths)
    output_dir = fv["output_dir"].value
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NotADirectoryError(f"--output_dir={output_dir}: not a directory")
    model = predictor.open_predictor(kind, path)
    info = model.info
    print(f"{info.path} ({info.describe()}): decoder={info.decoder}, flip_test={info.flip_test}")
    failures = []
    for result, name in zip(client.predict_each(model, paths, box), names, strict=True):
        if isinstance(result, client.Failure):
            cli.error("predict", str(result))
            failures.append(result)
            continue
        print(client.format_table(model, result))
        json_path, png_path = client.write_prediction(model, result, output_dir, name)
        print(f"  wrote {json_path} and {png_path}")
    written = len(paths) - len(failures)
    print(
        f"{written} image(s) -> {os.path.abspath(output_dir)}"
        + (f"; {len(failures)} failed (named on stderr)" if failures else "")
    )
    return 1 if failures else 0


def _run_video(fv: flags.FlagValues, kind: str, path: str) -> int:
    if fv["image"].value:
        raise cli.UsageError("give --image or --video, not both")
    cli.require(fv, "output_dir")
    options = video_options.from_flags(fv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stacked_hourglass.serving import client, video_lib

    box = client.parse_box(fv["box"].value)
    return video_lib.run_videos(kind, path, fv["video"].value, fv["output_dir"].value, options, box)


def main(argv=None) -> int:
    return cli.main("predict", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
