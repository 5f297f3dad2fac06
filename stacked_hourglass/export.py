r"""Exports a training run as a versioned SavedModel for TF Serving.

  python -m stacked_hourglass.export --model_dir=DIR --export_dir=DIR [--flip_test] [--version=N]

Writes EXPORT_DIR/<version>/ (default version: 1 + the highest existing one) with the signatures
`serving_default` (image bytes + person box -> keypoints in original pixels) and
`serving_image_tensor` (crops -> keypoints in crop pixels); see `serving.exporter`.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("model_dir", None, "Model directory (config.json + model).", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Versioned export base directory.", flag_values=fv)
    flags.DEFINE_boolean(
        "flip_test",
        False,
        "Average with the mirrored crop's heatmaps in the graph.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "version", None, "Version subdirectory (default: 1 + the highest).", lower_bound=1,
        flag_values=fv,
    )  # fmt: skip


def run(fv: flags.FlagValues) -> None:
    cli.require(fv, "model_dir", "export_dir")
    # Imported here so that flag errors do not wait for TensorFlow to load.
    from stacked_hourglass.serving import exporter, layout

    model_dir, flip_test = fv["model_dir"].value, fv["flip_test"].value
    path = exporter.export_from_model_dir(
        model_dir, fv["export_dir"].value, flip_test=flip_test, version=fv["version"].value
    )
    print(f"Exported {model_dir} -> {path} (flip_test={flip_test})")
    print(f"Signatures: {layout.SERVING_DEFAULT}, {layout.SERVING_IMAGE_TENSOR}")


def main(argv=None) -> int:
    return cli.main("export", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
