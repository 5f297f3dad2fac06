r"""Predicts poses on one's own images with an exported SavedModel.

  python -m stacked_hourglass.predict --saved_model=EXPORT_DIR[/VERSION] \
      --image=FILE[,FILE...]|DIR [--box=x1,y1,x2,y2] --output_dir=DIR

Writes NAME.json (joint name -> x, y, score in 0-based original pixels, image size, box) and
NAME.png (skeleton overlay) per image and prints the keypoints table. Without --box the whole
image is the person box; with it, the same box is used for every image. Exits non-zero with one
line on bad input (missing file, not an image, bad or outside box).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "SavedModel version dir, or an export dir (its highest version is used)."
)
_IMAGE = flags.DEFINE_string(
    "image", None, "Image file(s), comma-separated, or a directory of .jpg/.png/.bmp/.gif files."
)
_BOX = flags.DEFINE_string(
    "box", None, "Person box x1,y1,x2,y2 in original pixels (default: the whole image)."
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where NAME.json and NAME.png go.")
flags.mark_flags_as_required(["saved_model", "image", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # TF's per-call C++ warnings (e.g. "Local rendezvous is aborting" on a failed assertion)
    # would bury the one-line error; the user can still ask for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Imported here so that flag errors do not wait for TensorFlow to load.
    import tensorflow as tf

    from stacked_hourglass.serving import client

    try:
        box = client.parse_box(_BOX.value)
        paths = client.list_images(_IMAGE.value)
        names = client.output_names(paths)
        model = client.load_serving_model(_SAVED_MODEL.value)
        predictions = client.predict_files(model, paths, box)
    except tf.errors.InvalidArgumentError as e:
        sys.exit(f"error: {e.message}")
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    for prediction, name in zip(predictions, names, strict=True):
        print(client.format_table(model, prediction))
        json_path, png_path = client.write_prediction(model, prediction, _OUTPUT_DIR.value, name)
        print(f"  wrote {json_path} and {png_path}")
    print(f"{len(predictions)} image(s) -> {os.path.abspath(_OUTPUT_DIR.value)}")


if __name__ == "__main__":
    app.run(main)
