"""The export directory TF Serving watches, and what the client reads from it.

    EXPORT_DIR/<version>/saved_model.pb
    EXPORT_DIR/<version>/variables/...
    EXPORT_DIR/<version>/assets/joints.json   joint names, skeleton, input size, flip_test, decoder

TF Serving loads the highest integer version. Pure Python through `utils.files` (so paths may be
gs:// etc., and a scheme TensorFlow lacks is one line); no model code, so a client does not
import the network.
"""

from __future__ import annotations

import json
import re

import stacked_hourglass
from stacked_hourglass import joints
from stacked_hourglass.data.box_rule import BOX_MARGIN  # the box → crop rule's, re-exported
from stacked_hourglass.serving.predictor import DEFAULT_DECODER
from stacked_hourglass.utils import files

JOINTS_ASSET = "joints.json"
SERVING_DEFAULT = "serving_default"
SERVING_BOX = "serving_box"
SERVING_HEATMAPS = "serving_heatmaps"
SERVING_IMAGE_TENSOR = "serving_image_tensor"
SERVING_PEOPLE = "serving_people"
SIGNATURES = (
    SERVING_DEFAULT, SERVING_BOX, SERVING_HEATMAPS, SERVING_IMAGE_TENSOR, SERVING_PEOPLE
)  # fmt: skip

_VERSION_RE = re.compile(r"^\d+$")


def next_version(export_dir: str) -> int:
    """1 + the highest integer subdirectory of `export_dir`, or 1 when there is none."""
    if not files.isdir(export_dir):
        return 1
    versions = [
        int(name)
        for name in files.listdir(export_dir)
        if _VERSION_RE.match(name) and files.isdir(files.join(export_dir, name))
    ]
    return max(versions, default=0) + 1


def joints_metadata(
    joint_set: joints.JointSet,
    input_size: int,
    heatmap_size: int,
    flip_test,
    decoder: str = DEFAULT_DECODER,
    sigma: float = 1.0,
    max_pixels: int = 0,
):
    """The content of `assets/joints.json` (lets a client name joints without the model_dir)."""
    return {
        "dataset": joint_set.name,
        "joint_names": list(joint_set.names),
        "skeleton": [list(edge) for edge in joint_set.skeleton],
        "flip_permutation": joint_set.flip_permutation(),
        "joint_set": joint_set.to_dict(),
        "input_size": int(input_size),
        "heatmap_size": int(heatmap_size),
        "flip_test": bool(flip_test),
        "decoder": str(decoder),
        "sigma": float(sigma),
        "max_pixels": int(max_pixels),
        "signatures": list(SIGNATURES),
        "box_margin": BOX_MARGIN,
        "coordinates": "0-based pixels, (x, y), integer values at pixel centres",
        "package_version": stacked_hourglass.__version__,
    }


def resolve_saved_model(path: str) -> str:
    """A SavedModel directory, or the highest version under a versioned export directory."""
    if files.exists(files.join(path, "saved_model.pb")):
        return path
    if files.isdir(path):
        latest = next_version(path) - 1
        if latest >= 1:
            return files.join(path, str(latest))
    raise FileNotFoundError(
        f"{path}: not a SavedModel (no saved_model.pb) nor an export directory with version "
        "subdirectories"
    )


def read_joints_metadata(path: str) -> dict:
    """`assets/joints.json` of a SavedModel (or of an export directory's highest version)."""
    path = resolve_saved_model(path)
    metadata_path = files.join(path, "assets", JOINTS_ASSET)
    if not files.exists(metadata_path):
        raise FileNotFoundError(f"{metadata_path}: missing; was {path} written by export?")
    return json.loads(files.read_bytes(metadata_path))
