r"""Exports a training run as a versioned SavedModel for TF Serving, or as a LiteRT model.

  python -m stacked_hourglass.export --model_dir=DIR --export_dir=DIR [--flip_test] [--version=N]
      [--decoder=quarter|dark]
  python -m stacked_hourglass.export --format=litert --model_dir=DIR --output=FILE.tflite
      [--quantize=none|fp16|dynamic_int8] [--decoder=quarter|dark] [--flip_test]

SavedModel: writes EXPORT_DIR/<version>/ (default version: 1 + the highest existing one) with the
signatures `serving_default` (image bytes -> keypoints in original pixels), `serving_box` (+ a
person box), `serving_heatmaps` (+ the heatmaps) and `serving_image_tensor` (crops -> keypoints
in crop pixels); see `serving.exporter`.
LiteRT: writes FILE.tflite (crop [1, S, S, 3] in [0, 1] -> heatmaps, keypoints in crop pixels,
scores) and FILE.json (joints, decoder, quantisation); see `serving.litert`.
The decoder and the flip test run inside the exported graph and are recorded in its metadata.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.utils import cli

FORMATS = ("saved_model", "litert")
DECODERS = ("quarter", "dark")  # = data.codec.DECODERS (not imported: it would load TF)
QUANTIZE_MODES = ("none", "fp16", "dynamic_int8")  # = serving.litert.QUANTIZE_MODES


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
    flags.DEFINE_enum("format", "saved_model", list(FORMATS), "What to write.", flag_values=fv)
    flags.DEFINE_enum(
        "decoder", "quarter", list(DECODERS),
        "Heatmap decoder in the graph: the paper's quarter-pixel shift, or DARK.", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_enum(
        "quantize", "none", list(QUANTIZE_MODES),
        "LiteRT post-training quantisation (--format=litert only).", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string("output", None, "The .tflite file (--format=litert).", flag_values=fv)


def run(fv: flags.FlagValues) -> None:
    model_dir, flip_test = fv["model_dir"].value, fv["flip_test"].value
    decoder = fv["decoder"].value
    if fv["format"].value == "litert":
        cli.require(fv, "model_dir", "output")
        if fv["export_dir"].value or fv["version"].value:
            raise cli.UsageError(
                "--export_dir/--version are for --format=saved_model; use --output"
            )
        output = fv["output"].value
        if not output.endswith(".tflite"):
            raise cli.UsageError(f"--output={output!r}: expected a FILE.tflite path")
        from stacked_hourglass.serving import litert

        path = litert.convert_from_model_dir(
            model_dir, output, quantize=fv["quantize"].value, flip_test=flip_test, decoder=decoder
        )
        print(
            f"Exported {model_dir} -> {path} (LiteRT, quantize={fv['quantize'].value}, "
            f"decoder={decoder}, flip_test={flip_test}); metadata {litert.metadata_path(path)}"
        )
        return
    cli.require(fv, "model_dir", "export_dir")
    if fv["output"].value or fv["quantize"].value != "none":
        raise cli.UsageError("--output/--quantize are for --format=litert")
    # Imported here so that flag errors do not wait for TensorFlow to load.
    from stacked_hourglass.serving import exporter, layout

    path = exporter.export_from_model_dir(
        model_dir,
        fv["export_dir"].value,
        flip_test=flip_test,
        version=fv["version"].value,
        decoder=decoder,
    )
    print(f"Exported {model_dir} -> {path} (flip_test={flip_test}, decoder={decoder})")
    print(f"Signatures: {', '.join(layout.SIGNATURES)}")


def main(argv=None) -> int:
    return cli.main("export", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
