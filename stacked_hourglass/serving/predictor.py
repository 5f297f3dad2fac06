"""One interface to the three kinds of trained model: a Keras model directory, a SavedModel
export and a LiteRT file.

    kind, path = choose_model({"model_dir": ..., "saved_model": ..., "litert": ...})
    info = read_info(kind, path)            # joint set, input size, decoder...: no network
    model = load(info)                      # or open_predictor(kind, path)
    model.heatmaps(crops)                   # float32 [B, S, S, 3] in [0, 1] → [B, H, H, K]
    model.keypoints(crops)                  # → (keypoints [B, K, 2] crop pixels, scores [B, K])
    model.predict_image(path, box)          # one image file → `client.Prediction`
    model.predict_people(path, boxes)       # one image, N person boxes → `People` (one batch)

Implementations (`Predictor`): `keras_predictor.KerasPredictor` (a model directory's final model
or latest checkpoint), `client.ServingModel` (a SavedModel's `serving_image_tensor`,
`serving_box` and `serving_people` signatures) and `litert.LiteRTModel` (the LiteRT interpreter;
images are cropped on the host with the rule of `box_crop`). A model directory runs the decoder
and the flip test the caller asks for; an export runs the ones baked into it, and asking for
others is an error naming the export.

This module imports neither TensorFlow nor Keras (an implementation is imported when a model of
its kind is read), so that commands define their flags here (`define_flags`) and report flag
errors without waiting for TensorFlow to load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from absl import flags

from stacked_hourglass import joints

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from stacked_hourglass.data.codec import HeatmapCodec
    from stacked_hourglass.serving.client import Prediction

KINDS = ("model_dir", "saved_model", "litert")
DECODERS = ("quarter", "dark")  # = data.codec.DECODERS (not imported: it would load TF)
DEFAULT_DECODER = "quarter"
_HELP = {
    "model_dir": "Training (or weight-import) directory.",
    "saved_model": "Exported SavedModel version dir, or an export dir (its highest version).",
    "litert": "A .tflite file from export --format=litert.",
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model predicts and how, read without loading the network.

    Attributes:
        kind: one of `KINDS`.
        path: the model directory, the SavedModel version directory (resolved from an export
            directory), or the .tflite file.
        joint_set: the joints of the heatmap channels, in order.
        input_size: S, the crop side.
        decoder: the heatmap decoder, "quarter" or "dark" (`data.codec`).
        sigma: the training targets' Gaussian sigma (the DARK decoder smooths with it).
        flip_test: whether `heatmaps` averages with the mirrored crop's.
        max_pixels: the largest image (height x width) the model's image path accepts, as
            recorded (0: none recorded; the image path then uses the package default).
        quantize: a LiteRT model's quantisation ("none" for the float models).
    """

    kind: str
    path: str
    joint_set: joints.JointSet
    input_size: int
    decoder: str
    sigma: float
    flip_test: bool
    max_pixels: int
    quantize: str = "none"

    def codec(self) -> HeatmapCodec:
        """The heatmap codec of this model's crops and decoder."""
        from stacked_hourglass.data.codec import HeatmapCodec

        return HeatmapCodec.for_model(self.input_size, sigma=self.sigma, decoder=self.decoder)

    def describe(self) -> str:
        """ "Keras model directory", "SavedModel" or "LiteRT, quantize=MODE"."""
        if self.kind == "litert":
            return f"LiteRT, quantize={self.quantize}"
        return {"model_dir": "Keras model directory", "saved_model": "SavedModel"}[self.kind]


@dataclasses.dataclass(frozen=True)
class People:
    """The people of one image: N person boxes, each cropped from the one decode of the image,
    run through the network as one batch.

    Attributes:
        image: uint8 [H, W, 3] the decoded (upright) image, for drawing.
        image_size: (height, width).
        keypoints: float32 [N, K, 2] (x, y) 0-based original pixels.
        scores: float32 [N, K] heatmap peaks.
        boxes: float32 [N, 4] (x1, y1, x2, y2) the boxes used (four zeros filled in as the whole
            image, [-0.5, -0.5, W - 0.5, H - 0.5]).
        box_scores: float32 [N] the boxes' scores (1 where none was given).
    """

    image: np.ndarray
    image_size: tuple[int, int]
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


class Predictor(Protocol):
    """A loaded model of any kind (see the module docstring)."""

    info: ModelInfo

    def heatmaps(self, crops: tf.Tensor) -> tf.Tensor:
        """Crops float32 [B, S, S, 3] in [0, 1] → last-stack heatmaps float32 [B, H, H, K];
        usable inside `tf.function` (a `model.inference` heatmaps function)."""

    def keypoints(self, crops) -> tuple[np.ndarray, np.ndarray]:
        """Crops float32 [B, S, S, 3] in [0, 1] → (keypoints float32 [B, K, 2] in 0-based crop
        pixels, scores float32 [B, K]), numpy, decoded with `info.decoder`."""

    def predict_image(self, path: str, box=None) -> Prediction:
        """One image file and person box (None: the whole image) → keypoints in original
        pixels (`client.Prediction`); a bad file or box raises with a message naming it."""

    def predict_people(self, image, boxes, box_scores=None, pixels=None) -> People:
        """One image and its person boxes → every person's keypoints (`People`).

        Args:
            image: the image file's path, or its encoded bytes (JPEG/PNG/BMP/GIF).
            boxes: float [N, 4] (x1, y1, x2, y2) original pixels (a row of four zeros: the whole
                image); N may be 0.
            box_scores: float [N] (None: ones).
            pixels: uint8 [H, W, 3] the image already decoded by the caller, if it was (the host
                predictors then crop it instead of decoding again; a SavedModel draws it).

        Raises:
            ValueError (host path) / tf.errors.InvalidArgumentError (SavedModel): a bad image or
                box, the message naming it ("box[2] = [...] lies outside ...").
        """


def joint_set_from_metadata(metadata: Mapping, source: str = "export metadata") -> joints.JointSet:
    """The `JointSet` of an export's metadata: the recorded one ("joint_set"); in exports written
    before it was recorded, the packaged one when its dataset and joint names are known, else
    one built from the metadata (names and skeleton: enough to draw).

    Raises:
        ValueError: a recorded joint set that is not one, naming `source` and the field.
    """
    if metadata.get("joint_set") is not None:
        return joints.JointSet.from_dict(metadata["joint_set"], f"{source}: joint_set")
    names = tuple(metadata["joint_names"])
    try:
        known = joints.get_joint_set(metadata["dataset"])
    except ValueError:
        known = None
    if known is not None and known.names == names:
        return known
    return joints.JointSet(
        name=metadata["dataset"],
        names=names,
        swap_pairs=(),
        skeleton=tuple(tuple(edge) for edge in metadata["skeleton"]),
        pck_groups=(),
    )


def info_from_metadata(kind: str, path: str, metadata: Mapping) -> ModelInfo:
    """The `ModelInfo` of an export (SavedModel joints.json, LiteRT FILE.json)."""
    return ModelInfo(
        kind=kind,
        path=path,
        joint_set=joint_set_from_metadata(metadata, path),
        input_size=int(metadata["input_size"]),
        # Exports written before the decoder was recorded used the paper's.
        decoder=str(metadata.get("decoder", DEFAULT_DECODER)),
        sigma=float(metadata.get("sigma", 1.0)),
        flip_test=bool(metadata.get("flip_test", False)),
        max_pixels=int(metadata.get("max_pixels") or 0),
        quantize=str(metadata.get("quantize", "none")),
    )


def _flag_list(kinds: Sequence[str]) -> str:
    names = [f"--{kind}" for kind in kinds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def choose_model(given: Mapping[str, str | None], missing: str | None = None) -> tuple[str, str]:
    """(kind, path) of the one model flag given: the commands' "exactly one of" check.

    Args:
        given: {kind: path or None} of the model flags a command offers, in the order its
            messages name them.
        missing: the message when none is given; None: the "exactly one of" message.

    Raises:
        ValueError: "give exactly one of --a and --b" when several are given (or none, without
            `missing`); `missing` when none is.
    """
    chosen = [(kind, path) for kind, path in given.items() if path]
    if len(chosen) == 1:
        return chosen[0]
    if chosen or missing is None:
        raise ValueError(f"give exactly one of {_flag_list(list(given))}")
    raise ValueError(missing)


def define_flags(fv: flags.FlagValues, kinds: Sequence[str] = KINDS, options: bool = False) -> None:
    """The model flags (`--model_dir`, `--saved_model`, `--litert`: those of `kinds`) and, with
    `options`, `--decoder` and `--flip_test` (what `read_info` takes)."""
    for kind in kinds:
        flags.DEFINE_string(kind, None, _HELP[kind], flag_values=fv)
    if options:
        flags.DEFINE_enum(
            "decoder", None, list(DECODERS),
            "Heatmap decoder for --model_dir (default quarter); an export uses its own.",
            flag_values=fv,
        )  # fmt: skip
        flags.DEFINE_boolean(
            "flip_test", False, "Average with the heatmaps of the flipped image.", flag_values=fv
        )


def read_info(
    kind: str, path: str, *, flip_test: bool = False, decoder: str | None = None
) -> ModelInfo:
    """The `ModelInfo` of a model, from its config.json / joints.json / FILE.json only.

    Args:
        kind: one of `KINDS`.
        path: as the user gave it (messages name it so).
        flip_test: ask for the flip test (a model directory runs it; an export must have it).
        decoder: ask for a decoder (None: the export's own; "quarter" for a model directory).

    Raises:
        FileNotFoundError / ValueError: no such model, or an export without the flip test or
            with another decoder than asked for (one line naming the export and what to do).
    """
    if kind == "model_dir":
        from stacked_hourglass import run_dir

        config = run_dir.load_config(path)
        return ModelInfo(
            kind, path, config.data.joint_set, config.model.input_size,
            decoder or DEFAULT_DECODER, config.data.sigma, bool(flip_test), config.data.max_pixels,
        )  # fmt: skip
    if kind == "saved_model":
        from stacked_hourglass.serving import layout

        resolved = layout.resolve_saved_model(path)
        info = info_from_metadata(kind, resolved, layout.read_joints_metadata(resolved))
    elif kind == "litert":
        from stacked_hourglass.serving import litert

        info = info_from_metadata(kind, path, litert.read_metadata(path))
    else:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    _check_baked(info, path, flip_test, decoder)
    return info


def _check_baked(info: ModelInfo, path: str, flip_test: bool, decoder: str | None) -> None:
    """An export's decoder and flip test are in its graph: asking for others is an error."""
    if decoder and decoder != info.decoder:
        raise ValueError(
            f"{path} was exported with decoder={info.decoder}; evaluate it without --decoder or "
            f"export it again with --decoder={decoder}"
        )
    if flip_test and not info.flip_test:
        if info.kind == "litert":
            raise ValueError(
                f"{path} was converted without the flip test; convert it with --flip_test or "
                "evaluate without --flip_test"
            )
        raise ValueError(
            f"{path} was exported without the flip test; export it with --flip_test (the flip "
            "test runs inside the graph) or evaluate without --flip_test"
        )


def load(info: ModelInfo) -> Predictor:
    """Loads the network `info` describes (`read_info`)."""
    if info.kind == "model_dir":
        from stacked_hourglass.serving import keras_predictor

        return keras_predictor.KerasPredictor.load(info)
    if info.kind == "saved_model":
        from stacked_hourglass.serving import client

        return client.load_serving_model(info.path)
    from stacked_hourglass.serving import litert

    return litert.LiteRTModel(info.path)


def open_predictor(
    kind: str, path: str, *, flip_test: bool = False, decoder: str | None = None
) -> Predictor:
    """`load(read_info(...))`: a model of `kind` at `path`, ready to predict."""
    return load(read_info(kind, path, flip_test=flip_test, decoder=decoder))
