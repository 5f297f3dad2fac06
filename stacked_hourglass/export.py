r"""Exports a training run as a versioned SavedModel for TF Serving.

  python -m stacked_hourglass.export --model_dir=DIR --export_dir=DIR [--flip_test] [--version=N]

Writes EXPORT_DIR/<version>/ (default version: 1 + the highest existing one) with the signatures
`serving_default` (image bytes + person box -> keypoints in original pixels) and
`serving_image_tensor` (crops -> keypoints in crop pixels); see `export_lib`.
"""

from __future__ import annotations

import sys

from absl import app, flags

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Training directory (config.json + model).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Versioned export base directory.")
_FLIP_TEST = flags.DEFINE_boolean(
    "flip_test", False, "Average with the heatmaps of the mirrored crop inside the graph."
)
_VERSION = flags.DEFINE_integer(
    "version", None, "Version subdirectory (default: 1 + the highest existing).", lower_bound=1
)
flags.mark_flags_as_required(["model_dir", "export_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Imported here so that flag errors do not wait for TensorFlow to load.
    from stacked_hourglass.serving import exporter

    try:
        path = exporter.export_from_model_dir(
            _MODEL_DIR.value, _EXPORT_DIR.value, flip_test=_FLIP_TEST.value, version=_VERSION.value
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"Exported {_MODEL_DIR.value} -> {path} (flip_test={_FLIP_TEST.value})")
    print(f"Signatures: {exporter.SERVING_DEFAULT}, {exporter.SERVING_IMAGE_TENSOR}")


if __name__ == "__main__":
    app.run(main)
