"""`predict`'s loop over images: the people of each image (`boxes.BoxSource`), one
`Predictor.predict_people` call per image, and what is written.

For each image `NAME.EXT`, into the output directory:

    NAME.json   {"image", "image_size": {"width", "height"}, "image_id", "dataset",
                 "flip_test", "coordinates", "joint_names",
                 "people": [{"box": [x1, y1, x2, y2], "box_score", "box_source", "score",
                             "keypoints": {joint name: {"x", "y", "score"}}}, ...]}
    NAME.png    the image with every person's skeleton and box, a colour per person (the plain
                image when no person was found)

and, with `coco_results`, one COCO keypoint results file for all the images:
[{"image_id", "category_id": 1, "keypoints": [x, y, score] * K, "score"}, ...].

Coordinates are 0-based original pixels, (x, y), pixel (0, 0)'s centre at (0.0, 0.0); the COCO
results keep them unchanged. A person's `score` is its box score times the mean of its joint
scores above `JOINT_SCORE_FLOOR` (0 when none is above). The COCO `image_id` of an image is the
detections file's, else its file stem's number (000000397133.jpg → 397133), else its index in
the run.

Boxes the user gave (`--box`, or the whole image) are the user's: one that does not fit the image
fails that image (one error line, as a bad file does). Boxes a detector or a detections file gave
are screened against the image first: one that does not fit it (`box_crop.box_problems`) is
skipped with a warning line naming the image and the box's source, and the other people of the
image are still predicted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import images
from stacked_hourglass.serving import box_crop, boxes, client, predictor
from stacked_hourglass.serving.predictor import People, Predictor
from stacked_hourglass.utils import cli, drawing, files

# COCO's keypoint results score people by their confident joints (as in the reference top-down
# implementations, e.g. mmpose's and HRNet's rescoring): joints under this score are ignored.
JOINT_SCORE_FLOOR = 0.2
COORDINATES = "0-based original pixels, (x, y), integer values at pixel centres"


@dataclasses.dataclass(frozen=True)
class Found:
    """One image's people and where their boxes came from.

    Attributes:
        path: the image file.
        people: the `People` predicted.
        boxes: the boxes given to the network (after screening), with their origins.
        warnings: one line per skipped box.
    """

    path: str
    people: People
    boxes: boxes.Boxes
    warnings: tuple[str, ...] = ()


def screen_boxes(found: boxes.Boxes, size) -> tuple[boxes.Boxes, list[str]]:
    """The boxes that fit an image of `size` (height, width), and a line per box that does not.

    Args:
        found: the boxes of a detector or a detections file.
        size: (height, width) of the (upright) image.

    Returns:
        (the boxes kept, ["box from SOURCE ...: the first problem of `box_crop.box_problems`;
        skipped"]).
    """
    size = tf.constant(size, tf.int32)
    keep, warnings = [], []
    for i, (box, origin) in enumerate(zip(found.boxes, found.origins, strict=True)):
        filled = box_crop.fill_box(box, size)
        problems = [m for ok, m in box_crop.box_problems(filled, size, i) if not bool(ok)]
        keep.append(not problems)
        if problems:
            reason = problems[0].numpy().decode("utf-8")
            warnings.append(f"{origin}: {reason}; skipped")
    return found.select(keep), warnings


def header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from an image's header; None when the header is bad (the predictor then
    names the problem)."""
    height, width, problem = images.image_header(data)
    if problem.numpy():
        return None
    return int(height), int(width)


def find_people(
    model: Predictor, source: boxes.BoxSource, path: str, data: bytes, pixels=None
) -> Found:
    """One image's boxes from `source`, screened (detected boxes), then `model.predict_people`.

    Args:
        model: any `Predictor`.
        source: where the boxes come from.
        path: the image file (the key `source` matches).
        data: the image's bytes.
        pixels: uint8 [H, W, 3] the decoded image, if the caller has it (else decoded here
            only when the source needs it: a detector).

    Raises:
        ValueError / tf.errors.InvalidArgumentError / OSError: a bad image or a bad box the user
            gave (as `predict_people` does).
    """
    if pixels is None and source.needs_pixels:
        pixels = client.decode_on_host(data, model.info.max_pixels or images.DEFAULT_MAX_PIXELS)
    found = source.boxes(path, pixels)
    warnings: list[str] = []
    if source.skip_bad_boxes:
        size = pixels.shape[:2] if pixels is not None else header_size(data)
        if size is not None:
            found, warnings = screen_boxes(found, size)
    people = model.predict_people(data, found.boxes, found.scores, pixels)
    return Found(path, people, found, tuple(warnings))


def person_score(box_score: float, scores) -> float:
    """box score × the mean joint score above `JOINT_SCORE_FLOOR` (0 when none is)."""
    scores = np.asarray(scores, np.float64)
    confident = scores[scores > JOINT_SCORE_FLOOR]
    return float(box_score * confident.mean()) if confident.size else 0.0


def coco_image_id(found: Found, index: int) -> int | str:
    """The detections file's image_id, else the file stem's number, else `index`."""
    if found.boxes.image_id is not None:
        return found.boxes.image_id
    stem = os.path.splitext(os.path.basename(found.path))[0]
    return int(stem) if stem.isdigit() else index


def people_record(model: Predictor, found: Found, image_id) -> dict:
    """The NAME.json content of one image (module docstring)."""
    people, names = found.people, model.info.joint_set.names
    height, width = people.image_size
    return {
        "image": found.path,
        "image_size": {"width": width, "height": height},
        "image_id": image_id,
        "dataset": model.info.joint_set.name,
        "flip_test": model.info.flip_test,
        "coordinates": COORDINATES,
        "joint_names": list(names),
        "people": [
            {
                "box": [float(v) for v in people.boxes[i]],
                "box_score": float(people.box_scores[i]),
                "box_source": found.boxes.origins[i],
                "score": person_score(people.box_scores[i], people.scores[i]),
                "keypoints": {
                    name: {"x": float(x), "y": float(y), "score": float(s)}
                    for name, (x, y), s in zip(
                        names, people.keypoints[i], people.scores[i], strict=True
                    )
                },
            }
            for i in range(len(people))
        ],
    }


def coco_results(record: dict) -> list[dict]:
    """COCO keypoint results (one per person) of a NAME.json record."""
    return [
        {
            "image_id": record["image_id"],
            "category_id": boxes.PERSON_CATEGORY,
            "keypoints": [
                round(float(v), 4)
                for point in person["keypoints"].values()
                for v in (point["x"], point["y"], point["score"])
            ],
            "score": person["score"],
        }
        for person in record["people"]
    ]


def write_people(model: Predictor, found: Found, record: dict, output_dir: str, name: str):
    """Writes NAME.json and NAME.png, each atomically; returns their paths."""
    files.makedirs(output_dir)
    json_path = files.join(output_dir, f"{name}.json")
    png_path = files.join(output_dir, f"{name}.png")
    files.write_text(json_path, json.dumps(files.jsonable(record), indent=2) + "\n")
    people = found.people
    overlay = drawing.render_people(
        people.image,
        people.keypoints,
        model.info.joint_set,
        scores=people.scores,
        boxes=people.boxes,
        title=os.path.basename(found.path),
    )
    with files.atomic_path(png_path) as tmp, files.open_file(tmp, "wb") as f:
        f.write(tf.io.encode_png(overlay).numpy())
    return json_path, png_path


def format_people(model: Predictor, found: Found) -> str:
    """A plain-text table per person of one image."""
    people = found.people
    height, width = people.image_size
    lines = [f"{found.path} ({width}x{height}): {len(people)} people"]
    for i in range(len(people)):
        box = ", ".join(f"{v:.1f}" for v in people.boxes[i])
        lines.append(
            f" person {i}: box [{box}] ({found.boxes.origins[i]}), box score "
            f"{people.box_scores[i]:.3f}"
        )
        lines.append(f"  {'joint':<12}{'x':>9}{'y':>9}  score")
        for joint, (x, y), s in zip(
            model.info.joint_set.names, people.keypoints[i], people.scores[i], strict=True
        ):
            # + 0.0 turns -0.0 into 0.0 for printing.
            lines.append(f"  {joint:<12}{x + 0.0:9.1f}{y + 0.0:9.1f}  {s:5.3f}")
    if not len(people):
        lines.append("  no people found")
    return "\n".join(lines)


def predict_images(
    model: Predictor,
    paths: Sequence[str],
    source: boxes.BoxSource,
    output_dir: str,
    coco_path: str | None = None,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    fail: Callable[[client.Failure], None] = lambda failure: None,
) -> list[client.Failure]:
    """Predicts every image's people, writes NAME.json and NAME.png (and the COCO results).

    Every image is tried: one that cannot be used is a `Failure` (`fail` is called with it as it
    happens) and the next image is tried; a skipped box is a `warn` line. The COCO results file
    holds the people of the images that succeeded.

    Args:
        model: any `Predictor`.
        paths: image files (`client.list_images`).
        source: the boxes of each image.
        output_dir: where NAME.json and NAME.png go (created when the first image is written).
        coco_path: where the COCO keypoint results go; None: not written.
        warn: prints one warning line ("FILE: SOURCE: reason; skipped").
        fail: told of each image that fails.

    Returns:
        The failures, in order.

    Raises:
        ValueError: the source can answer for none of the images (a detections file for
            others), before any image is read.
    """
    names = client.output_names(list(paths))
    source.check_keys(paths)
    failures, results = [], []
    for index, (path, name) in enumerate(zip(paths, names, strict=True)):
        try:
            found = find_people(model, source, path, client.read_image(path))
        except (tf.errors.InvalidArgumentError, ValueError, OSError) as error:
            failures.append(client.as_failure(path, error))
            fail(failures[-1])
            continue
        for line in found.warnings:
            warn(f"{path}: {line}")
        record = people_record(model, found, coco_image_id(found, index))
        print(format_people(model, found))
        json_path, png_path = write_people(model, found, record, output_dir, name)
        print(f"  wrote {json_path} and {png_path}")
        results.extend(coco_results(record))
    if coco_path:
        files.write_text(coco_path, json.dumps(files.jsonable(results)) + "\n")
        print(f"{len(results)} people -> {coco_path} (COCO keypoint results)")
    return failures


def run_images(
    kind: str,
    model_path: str,
    image_spec: str,
    output_dir: str,
    coco_path: str | None,
    make_source: Callable[[], boxes.BoxSource],
) -> int:
    """`predict --image`: lists the images, checks the output folder and the box source against
    them, loads the model, predicts every image (`predict_images`) and prints a summary.

    Args:
        kind, model_path: the model (`predictor.KINDS`).
        image_spec: `--image` (files, comma-separated, or a folder).
        output_dir: where NAME.json and NAME.png go.
        coco_path: `--coco_results`, or None.
        make_source: builds the box source (a detector loads here), called once the images are
            listed, so that a bad `--image` is said before a detector loads.

    Returns:
        The exit status: 1 when any image failed (each named on stderr), else 0.
    """
    paths = client.list_images(image_spec)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NotADirectoryError(f"--output_dir={output_dir}: not a directory")
    source = make_source()
    source.check_keys(paths)  # a detections file for other images: before the model loads
    model = predictor.open_predictor(kind, model_path)
    info = model.info
    print(f"{info.path} ({info.describe()}): decoder={info.decoder}, flip_test={info.flip_test}")
    failures = predict_images(
        model, paths, source, output_dir, coco_path,
        warn=lambda line: print(f"predict: warning: {line}", file=sys.stderr),
        fail=lambda failure: cli.error("predict", str(failure)),
    )  # fmt: skip
    written = len(paths) - len(failures)
    print(
        f"{written} image(s) -> {os.path.abspath(output_dir)}"
        + (f"; {len(failures)} failed (named on stderr)" if failures else "")
    )
    return 1 if failures else 0
