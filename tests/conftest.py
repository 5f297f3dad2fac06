"""Shared fixtures: small synthetic TFRecord splits written to a temporary folder."""

import os

import numpy as np
import pytest

from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import synthetic


def _share_the_cores_between_workers() -> None:
    """Sizes TensorFlow's thread pools to each pytest-xdist worker's share of the CPUs.

    Every worker would otherwise size its pools to the whole machine: two workers on two cores
    run four busy threads that spin and switch. Set before TensorFlow creates its pools (its
    first op); the tests' subprocesses inherit it. A variable already set is kept.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)


_share_the_cores_between_workers()

# ONEDNN_MAX_CPU_ISA values that cap oneDNN below its bf16 kernels.
_BELOW_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


@pytest.fixture(scope="session")
def skip_capped_bf16():
    """`check(dtype)`: skips a bfloat16 case where `ONEDNN_MAX_CPU_ISA` caps oneDNN below its bf16
    kernels while TensorFlow's oneDNN ops are on. TensorFlow picks those kernels from the CPU's
    flags and oneDNN then cannot create them ("could not create a primitive descriptor"): a
    combination no real CPU has. An AVX2-only CPU runs Eigen's kernels, which
    `TF_ENABLE_ONEDNN_OPTS=0` reproduces (and these cases run there)."""

    def check(dtype) -> None:
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
        onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "") != "0"
        if "bfloat16" in str(dtype) and isa in _BELOW_BF16 and onednn:
            pytest.skip(f"ONEDNN_MAX_CPU_ISA={isa} leaves TensorFlow's oneDNN no bf16 kernels")

    return check


def write_synthetic_split(output_dir, split, num_examples, num_shards=2, seed=0):
    """Writes `num_examples` synthetic people as SPLIT-*.tfrecord; returns the glob."""
    shards.write_split(
        synthetic.generate_examples(split, num_examples, seed=seed),
        num_examples,
        output_dir,
        split,
        "synthetic",
        num_shards=num_shards,
        show_progress=False,
    )
    return str(output_dir / f"{split}-*.tfrecord")


@pytest.fixture(scope="session")
def synthetic_records(tmp_path_factory):
    """{"train": glob, "valid": glob} of 48 / 16 synthetic people."""
    root = tmp_path_factory.mktemp("synthetic_records")
    return {
        "train": write_synthetic_split(root, "train", 48),
        "valid": write_synthetic_split(root, "valid", 16),
    }


# A joint set that is no body (a tool): what --joints=FILE.json and the manifests carry.
TOOL_JOINT_SET = {
    "name": "tool",
    "joints": ["tip", "left_jaw", "right_jaw", "pivot", "handle"],
    "flip_pairs": [["left_jaw", "right_jaw"]],
    "skeleton": [["tip", "pivot"], ["left_jaw", "pivot"], ["right_jaw", "pivot"],
                 ["pivot", "handle"]],
}  # fmt: skip


def write_joint_set_split(output_dir, split, joint_set, num_examples, num_shards=1, seed=0):
    """Writes `num_examples` people of `joint_set` (a `JointSet`) as SPLIT-*.tfrecord, with a
    manifest recording the joint set; returns the glob.

    Each person: a smooth random 64x64 image, every joint visible at a random place inside it,
    the crop the whole image, normaliser 20 px. The records are written as "synthetic" (the
    writer's built-in name) and the manifest then records `joint_set`, as a converter of a
    custom set writes it.
    """
    import json

    import numpy as np

    from stacked_hourglass.data import features
    from stacked_hourglass.data.records.split import manifest_name

    rng = np.random.default_rng(seed)
    k = joint_set.num_joints
    examples = [
        features.PersonExample(
            image_encoded=_image_bytes((64, 64), seed * 1000 + i),
            filename=f"{split}_{i}.jpg",
            height=64,
            width=64,
            center=(31.5, 31.5),
            scale=64 / 200,
            keypoints=rng.uniform(8, 56, (k, 2)),
            keypoint_status=np.full(k, features.VISIBLE),
            normalizer=20.0,
            headbox=None,
            dataset="synthetic",
            index=i,
            person=0,
        )  # fmt: skip
        for i in range(num_examples)
    ]
    shards.write_split(
        examples, num_examples, output_dir, split, "synthetic", num_shards=num_shards,
        show_progress=False,
    )  # fmt: skip
    manifest = output_dir / manifest_name(split)
    payload = json.loads(manifest.read_text())
    payload["joint_names"] = list(joint_set.names)
    payload["joint_set"] = joint_set.to_dict()
    manifest.write_text(json.dumps(payload))
    return str(output_dir / f"{split}-*.tfrecord")


@pytest.fixture(scope="session")
def tool_records(tmp_path_factory):
    """{"train", "valid": globs of 8 / 4 people of `TOOL_JOINT_SET`, "joint_set": the JointSet,
    "file": the joint-set JSON file}."""
    import json

    from stacked_hourglass import joints

    root = tmp_path_factory.mktemp("tool_records")
    joint_set = joints.JointSet.from_dict(TOOL_JOINT_SET)
    (root / "tool.json").write_text(json.dumps(TOOL_JOINT_SET))
    return {
        "train": write_joint_set_split(root, "train", joint_set, 8),
        "valid": write_joint_set_split(root, "valid", joint_set, 4, seed=1),
        "joint_set": joint_set,
        "file": str(root / "tool.json"),
    }


# --- data sources / records builders: person examples, a tiny official MPII .mat ---------------


def _png_header(width, height) -> bytes:
    """A PNG signature + IHDR (+ IEND) claiming width x height: no pixel data at all (an image
    "too large" to decode, read from its header only)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def png_header():
    """`png_header(width, height)` → the bytes of a PNG header claiming that size, no pixels."""
    return _png_header


def _solid_jpeg(height=48, width=64, value=128) -> bytes:
    import tensorflow as tf

    return tf.io.encode_jpeg(tf.fill([height, width, 3], tf.constant(value, tf.uint8))).numpy()


@pytest.fixture
def person_example():
    """`make(i, image=None, **changes)` → a valid 16-joint `PersonExample` with a 48x64 JPEG."""
    import numpy as np

    from stacked_hourglass.data import features

    def make(i: int, image: bytes | None = None, **changes) -> features.PersonExample:
        keypoints = np.stack([np.arange(16) + i, np.arange(16) * 2.0], axis=1).astype(np.float64)
        status = np.full(16, features.VISIBLE)
        status[3] = features.OCCLUDED
        status[5] = features.NOT_ANNOTATED
        keypoints[5] = 0
        example = features.PersonExample(
            image_encoded=image if image is not None else _solid_jpeg(value=i % 255),
            filename=f"img_{i:04d}.jpg", height=48, width=64, center=(30.0 + i, 20.5),
            scale=0.25 + 0.01 * i, keypoints=keypoints, keypoint_status=status,
            normalizer=10.0 + i, headbox=(1.0, 2.0, 11.0, 12.0), dataset="synthetic", index=i,
            person=0,
        )  # fmt: skip
        for key, value in changes.items():
            setattr(example, key, value)
        return example

    return make


def _mat_structs(rows: list[dict], fields: list[str]):
    """A (1, n) MATLAB struct array; fields a row lacks are [] (as in MPII's file)."""
    import numpy as np

    array = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            array[0, i][f] = row.get(f, np.zeros((0, 0)))
    return array


_MPII_RECT_FIELDS = ["x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"]


def _mpii_rect(objpos=None, scale=None, head=None, points=None) -> dict:
    rect = {}
    if objpos is not None:
        rect["objpos"] = _mat_structs([dict(x=objpos[0], y=objpos[1])], ["x", "y"])
        rect["scale"] = scale
    if head is not None:
        rect.update(x1=head[0], y1=head[1], x2=head[2], y2=head[3])
    if points is not None:
        point = _mat_structs(
            [dict(id=j, x=x, y=y, is_visible=v) for j, x, y, v in points],
            ["id", "x", "y", "is_visible"],
        )
        rect["annopoints"] = _mat_structs([dict(point=point)], ["point"])
    return rect


def _make_official_mpii_mat(path) -> None:
    """3 images: A (train, 2 people), B (train, 3 people: one without objpos), C (test, 1)."""
    import numpy as np
    import scipy.io

    a0 = _mpii_rect((100, 120), 1.0, (90, 20, 110, 45), [(9, 101.5, 30.25, 1), (0, 95, 200, 0)])
    a1 = _mpii_rect((300, 150), 2.0, (290, 40, 320, 70), [(12, 310, 100, 1), (13, 330, 101, 1)])
    b0 = _mpii_rect(head=(1, 1, 5, 5), points=[(7, 50, 60, 1)])  # no objpos/scale
    # One point → squeeze_me gives a bare struct; is_visible [] (missing) and '0' (string).
    b1 = _mpii_rect((200, 100), 1.5, (190, 30, 210, 50), [(8, 201, 52, np.zeros((0, 0)))])
    b2 = _mpii_rect((220, 110), 1.2, (200, 30, 230, 50), [(15, 225, 140, "0")])
    c0 = _mpii_rect((150, 90), 1.1)
    images = [("a.jpg", [a0, a1]), ("b.jpg", [b0, b1, b2]), ("c.jpg", [c0])]
    annolist = _mat_structs(
        [dict(image=_mat_structs([dict(name=name)], ["name"]),
              annorect=_mat_structs(rects, _MPII_RECT_FIELDS)) for name, rects in images],
        ["image", "annorect"],
    )  # fmt: skip
    release = _mat_structs(
        [dict(annolist=annolist, img_train=np.array([[1, 1, 0]]), single_person=np.zeros((3, 1)),
              act=np.zeros((3, 1)))],
        ["annolist", "img_train", "single_person", "act"],
    )  # fmt: skip
    scipy.io.savemat(path, {"RELEASE": release})


@pytest.fixture
def official_mpii(tmp_path):
    """A folder with `mpii.mat` (official layout, see `_make_official_mpii_mat`), `images/`
    holding a.jpg, b.jpg, c.jpg (400x500) and `split.txt` (valid = person 1 of a.jpg)."""
    _make_official_mpii_mat(tmp_path / "mpii.mat")
    images = tmp_path / "images"
    images.mkdir()
    jpeg = _solid_jpeg(400, 500, 90)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (images / name).write_bytes(jpeg)
    (tmp_path / "split.txt").write_text("# Tompson-style split\na.jpg 0 1\n")
    return tmp_path


# --- model directories, SavedModel exports and images (training / serving / evaluation) -------

TINY_INPUT_SIZE = 64


def _make_model_dir(path, num_stacks=2, dataset="mpii", seed=1234, joint_set=None, **model_fields):
    """A random-weight model directory (config.json + model.keras); returns the Keras model.

    `joint_set` (a `JointSet`): the joints config.json records; None: the built-in set of
    `dataset`.

    Depth 1 (64x64 crops, an 8x8 bottom): tracing (export, evaluation) costs a fraction of the
    paper's depth 4, and nothing these models test depends on the depth.
    """
    import os

    import keras

    from stacked_hourglass import run_dir
    from stacked_hourglass.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from stacked_hourglass.model import build_model

    fields = {"num_features": 16, "depth": 1, "input_size": TINY_INPUT_SIZE, **model_fields}
    config = ExperimentConfig(
        model=ModelConfig(num_stacks=num_stacks, **fields),
        data=DataConfig(dataset=dataset, joint_set_spec=joint_set.to_dict() if joint_set else None),
        train=TrainConfig(model_dir=str(path)),
    ).resolve()
    keras.utils.set_random_seed(seed)
    model = build_model(config.model)
    os.makedirs(path, exist_ok=True)
    model.save(os.path.join(path, run_dir.FINAL_MODEL_FILE))
    run_dir.save_config(str(path), config)
    return model


@pytest.fixture(scope="session")
def make_model_dir():
    """`make(path, num_stacks=2, dataset="mpii", seed=1234, joint_set=None, **model_fields)` →
    the Keras model of a new random-weight model directory at `path` (16 features, depth 1,
    64x64 input)."""
    return _make_model_dir


@pytest.fixture(scope="session")
def mpii_model_dir(tmp_path_factory):
    """A random-weight 1-stack MPII model directory (`make_model_dir(path, num_stacks=1)`),
    built once per run; read-only: tests that write into it copy it first."""
    path = tmp_path_factory.mktemp("mpii_model") / "run"
    _make_model_dir(str(path), num_stacks=1)
    return path


def _random_image(shape, seed):
    """Smooth random uint8 image (blurred noise), so crops and heatmaps vary with the box."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (shape[0] // 8 + 1, shape[1] // 8 + 1, 3))
    image = tf.image.resize(small[None], shape, method="bilinear")[0]
    return np.clip(image.numpy(), 0, 255).astype(np.uint8)


def _image_bytes(shape, seed, fmt="jpeg"):
    import tensorflow as tf

    image = _random_image(shape, seed)
    if fmt == "png":
        return tf.io.encode_png(image).numpy()
    return tf.io.encode_jpeg(image, quality=95).numpy()


@pytest.fixture(scope="session")
def random_image():
    """`make((height, width), seed)` → a smooth random uint8 [H, W, 3] image."""
    return _random_image


@pytest.fixture(scope="session")
def image_bytes():
    """`make((height, width), seed, fmt="jpeg"|"png")` → encoded bytes of a `random_image`."""
    return _image_bytes


@pytest.fixture(scope="session")
def flip_export(tmp_path_factory):
    """A 1-stack MPII model exported with the flip test, and files to predict on.

    {"root", "model", "export_dir", "path" (EXPORT_DIR/1)}; ROOT/images holds person.jpg
    (96x72) and other.png (50x80); ROOT/notes.txt is not an image.
    """
    import keras

    from stacked_hourglass import joints
    from stacked_hourglass.model import build_model
    from stacked_hourglass.serving import exporter

    root = tmp_path_factory.mktemp("flip_export")
    keras.utils.set_random_seed(99)
    model = build_model(
        num_stacks=1, num_features=16, depth=1, input_size=TINY_INPUT_SIZE, num_joints=16
    )
    export_dir = str(root / "export")
    path = exporter.export_model(model, joints.MPII, TINY_INPUT_SIZE, export_dir, flip_test=True)
    images = root / "images"
    images.mkdir()
    (images / "person.jpg").write_bytes(_image_bytes((96, 72), 1))
    (images / "other.png").write_bytes(_image_bytes((50, 80), 2, fmt="png"))
    (root / "notes.txt").write_text("not an image\n")
    return {"root": root, "model": model, "export_dir": export_dir, "path": path}


@pytest.fixture(scope="session")
def synthetic_model(tmp_path_factory):
    """A random-weight 1-stack model directory on the synthetic joints and its export.

    {"model_dir", "plain" (EXPORT/1, exported without the flip test)}; evaluate them on
    `synthetic_records["valid"]`. `synthetic_flip_export` exports it with the flip test.
    """
    from stacked_hourglass.serving import exporter

    root = tmp_path_factory.mktemp("synthetic_model")
    model_dir = str(root / "run")
    _make_model_dir(model_dir, num_stacks=1, dataset="synthetic", seed=7)
    return {
        "root": root,
        "model_dir": model_dir,
        "plain": exporter.export_from_model_dir(model_dir, str(root / "export")),
    }


@pytest.fixture(scope="session")
def synthetic_flip_export(synthetic_model):
    """EXPORT_FLIP/1: `synthetic_model` exported with the flip test."""
    from stacked_hourglass.serving import exporter

    root = synthetic_model["root"]
    return exporter.export_from_model_dir(
        synthetic_model["model_dir"], str(root / "export_flip"), flip_test=True
    )


@pytest.fixture
def small_pck_files(tmp_path):
    """(predictions .h5, pose-hg ground-truth .h5) of 4 MPII people in `tmp_path`.

    Head size 10 px. Person 0 exact, person 1 every joint 20 px off (wrong), persons 2 and 3
    exact; person 2's joint 3 is not annotated (stored as (0, 0)). Mean: 41 of 55 correct.
    """
    import h5py
    import numpy as np

    from stacked_hourglass.evaluation import formats

    gt = np.arange(4 * 16 * 2, dtype=np.float64).reshape(4, 16, 2) + 10.0
    gt[2, 3] = 0.0
    preds = gt.copy()
    preds[1, :, 0] += 20.0
    gt_path = tmp_path / "gt.h5"
    with h5py.File(gt_path, "w") as f:
        f["part"] = gt
        f["normalize"] = np.full(4, 10.0)
    preds_path = formats.write_predictions_h5(tmp_path / "my-preds.h5", preds, coordinate_base=1)
    return preds_path, gt_path


# --- a process killed mid-run ----------------------------------------------------------------


class Killed(Exception):
    """Stands for the process dying mid-epoch: raised out of `fit`, so no epoch end runs."""


@pytest.fixture(scope="session")
def kill_at_step():
    """`(Killed, make)`: `make(step)` is a Keras callback that raises `Killed` once the optimizer
    has taken `step` steps, leaving on disk what a kill at that moment would."""
    import keras

    class KillAtStep(keras.callbacks.Callback):
        def __init__(self, step):
            super().__init__()
            self.step = step

        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == self.step:
                raise Killed(f"killed at step {self.step}")

    return Killed, KillAtStep


# --- COCO-format datasets: annotation JSON + JPEG images (synthetic people, or a 5-joint tool) --

# The 5-joint "tool" of `write_coco_dataset(kind="shapes")`: a pentagon's corners, clockwise as
# displayed from the top one (angles in degrees, y down); left/right as seen in the image.
COCO_TOOL_JOINTS = ("tip", "right_wing", "right_foot", "left_foot", "left_wing")
_TOOL_ANGLES = (-90.0, -18.0, 54.0, 126.0, 198.0)
_COCO_IMAGE_SIZE = (160, 160)  # (height, width) per image (width grows with the people)


def _coco_bbox(x1, y1, x2, y2, height, width) -> list[float]:
    """A box (x1, y1, x2, y2) in pixel-centre coordinates, clipped to the image, as COCO's
    continuous [x, y, w, h] (`sources.coco.to_coco_bbox`), rounded to 1/1000 pixel."""
    from stacked_hourglass.data.sources import coco

    clipped = (max(x1, -0.5), max(y1, -0.5), min(x2, width - 0.5), min(y2, height - 0.5))
    return [round(v, 3) for v in coco.to_coco_bbox(clipped)]


def _coco_people_image(rng, num_people: int):
    """(image uint8 [H, W, 3], [(keypoints [17, 3], bbox)]) of `num_people` synthetic people side
    by side; COCO's 12 limb joints labelled from the generator's (v 2, or 1 where another person
    covers the joint), the face joints and joints outside the image v 0."""
    from stacked_hourglass import joints
    from stacked_hourglass.data.sources import synthetic

    height, width = _COCO_IMAGE_SIZE[0], max(_COCO_IMAGE_SIZE[1], 80 * num_people)
    canvas = synthetic.render_background(rng, height, width)
    owner = np.zeros((height, width), np.uint8)
    mpii = {joints.canonical_name(n): i for i, n in enumerate(synthetic.JOINT_SET.names)}
    config = synthetic.SyntheticConfig(max_rotation_deg=20.0)
    bodies = []
    for k in range(num_people):
        centre = ((k + 0.5) * width / num_people, height / 2 + rng.uniform(-5, 5))
        body = synthetic.pose_body(synthetic.sample_pose(rng, config), rng.uniform(90, 120), centre)
        synthetic.render_person(canvas, owner, k + 1, body, synthetic.sample_style(rng))
        bodies.append(body)
    people = []
    for k, body in enumerate(bodies):
        keypoints = np.zeros((joints.COCO.num_joints, 3))
        for j, name in enumerate(joints.COCO.names):
            if name not in mpii:
                continue
            x, y = body.keypoints[mpii[name]]
            xi, yi = int(round(x)), int(round(y))
            if 0 <= xi < width and 0 <= yi < height:
                keypoints[j] = (round(x, 2), round(y, 2), 2 if owner[yi, xi] == k + 1 else 1)
        people.append((keypoints, _coco_bbox(*body.extent(), height, width)))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), people


def _coco_shapes_image(rng, num_tools: int):
    """(image, [(keypoints [5, 3], bbox)]) of `num_tools` pentagon tools side by side (a filled
    pentagon with a star of darker spokes and a light tip), every corner labelled v 2."""
    from stacked_hourglass.data.sources import synthetic

    height, width = _COCO_IMAGE_SIZE[0], max(_COCO_IMAGE_SIZE[1], 80 * num_tools)
    canvas = synthetic.render_background(rng, height, width)
    tools = []
    for k in range(num_tools):
        centre = np.array([(k + 0.5) * width / num_tools, height / 2]) + rng.uniform(-6, 6, 2)
        radius = rng.uniform(22.0, 34.0)
        angles = np.radians(np.asarray(_TOOL_ANGLES) + rng.uniform(-25, 25))
        corners = centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        colour = rng.uniform(40, 220, 3).astype(np.float32)
        synthetic.draw_polygon(canvas, None, 0, corners, colour, shade=0.2)
        for corner in corners:
            synthetic.draw_capsule(canvas, None, 0, centre, corner, 2.0, 0.5 * colour)
        synthetic.draw_ellipse(canvas, None, 0, corners[0], 4.0, 4.0, 0.0,
                               np.float32([250, 250, 250]))  # fmt: skip
        keypoints = np.concatenate([np.round(corners, 2), np.full((5, 1), 2.0)], axis=1)
        x1, y1 = corners.min(axis=0) - 3.0
        x2, y2 = corners.max(axis=0) + 3.0
        tools.append((keypoints, _coco_bbox(x1, y1, x2, y2, height, width)))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), tools


def _coco_category(kind: str) -> dict:
    from stacked_hourglass import joints

    if kind == "people":
        names, skeleton = joints.COCO.names, joints.COCO.skeleton
        category = {"id": 1, "name": "person", "supercategory": "person"}
    else:
        names = COCO_TOOL_JOINTS
        skeleton = list(zip(names, names[1:] + names[:1], strict=True))
        category = {"id": 3, "name": "tool", "supercategory": "tool"}
    one_based = [[names.index(a) + 1, names.index(b) + 1] for a, b in skeleton]
    return {**category, "keypoints": list(names), "skeleton": one_based}


def _coco_annotation(ann_id, image_id, category_id, keypoints, bbox, **extra) -> dict:
    return {
        "id": ann_id, "image_id": image_id, "category_id": category_id,
        "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in
                      enumerate(np.asarray(keypoints).reshape(-1))],
        "num_keypoints": int(np.count_nonzero(np.asarray(keypoints)[:, 2])),
        "bbox": bbox, "area": round(bbox[2] * bbox[3], 3), "iscrowd": 0, **extra,
    }  # fmt: skip


def _write_coco_dataset(directory, *, num_images=3, people_per_image=2, kind="people", seed=0):
    """Writes a small COCO-format keypoint dataset: DIRECTORY/images/*.jpg and
    DIRECTORY/annotations.json; returns (annotations_path, images_dir).

    kind "people": synthetic people (COCO's 17-joint person category, `joints.COCO`'s keypoints
    and skeleton; the 12 limb joints labelled, v 2 or 1 where another person covers the joint,
    the 5 face joints v 0); kind "shapes": a 5-joint "tool" (`COCO_TOOL_JOINTS`, category id 3,
    a pentagon on a textured background). `num_images` images (ids 101, 102, ...) of
    `people_per_image` annotated people or tools (annotation ids 1, 2, ...), each with its tight
    box (a small margin, clipped to the image) and area = w * h; then one `iscrowd` annotation
    and one with `num_keypoints` 0 on the first image, which the converter skips. So converting
    writes `num_images * people_per_image` records. Deterministic in `seed`; 160 px high images.
    """
    import json
    import pathlib

    from stacked_hourglass.data.sources import synthetic

    if kind not in ("people", "shapes"):
        raise ValueError(f"kind must be 'people' or 'shapes', got {kind!r}")
    directory = pathlib.Path(directory)
    images_dir = directory / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 22])
    category = _coco_category(kind)
    draw = _coco_people_image if kind == "people" else _coco_shapes_image
    images, annotations = [], []
    for i in range(num_images):
        image, objects = draw(rng, people_per_image)
        image_id, file_name = 101 + i, f"{101 + i:012d}.jpg"
        (images_dir / file_name).write_bytes(synthetic.encode_jpeg(image))
        images.append({"id": image_id, "file_name": file_name,
                       "height": image.shape[0], "width": image.shape[1]})  # fmt: skip
        for keypoints, bbox in objects:
            annotations.append(_coco_annotation(len(annotations) + 1, image_id, category["id"],
                                                keypoints, bbox))  # fmt: skip
    unlabelled = np.zeros((len(category["keypoints"]), 3))
    annotations.append(_coco_annotation(len(annotations) + 1, 101, category["id"], unlabelled,
                                        [0.0, 0.0, 40.0, 40.0], iscrowd=1))  # fmt: skip
    annotations.append(_coco_annotation(len(annotations) + 1, 101, category["id"], unlabelled,
                                        [10.0, 10.0, 20.0, 30.0]))  # fmt: skip
    path = directory / "annotations.json"
    payload = {
        "info": {"description": f"write_coco_dataset kind={kind} seed={seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }
    path.write_text(json.dumps(payload))
    return path, images_dir


@pytest.fixture(scope="session")
def write_coco_dataset():
    """`write_coco_dataset(directory, *, num_images=3, people_per_image=2, kind="people"|"shapes",
    seed=0)` → (annotations_path, images_dir): see `_write_coco_dataset`."""
    return _write_coco_dataset


# --- person detectors: SavedModels with the TF2 Object Detection API's signature ---------------


def _save_detector(path, boxes, scores, classes, input_dtype="uint8", outputs=None):
    """A SavedModel whose `serving_default` takes `input_tensor` [1, H, W, 3] of `input_dtype`
    and returns the given detections, whatever the image: `detection_boxes` [1, N, 4]
    normalised (ymin, xmin, ymax, xmax), `detection_scores` [1, N], `detection_classes` [1, N]
    float and `num_detections` [1] (the TF2 Object Detection API's outputs; `outputs` names the
    ones to keep)."""
    import tensorflow as tf

    constants = {
        "detection_boxes": tf.constant([boxes], tf.float32, shape=[1, len(boxes), 4]),
        "detection_scores": tf.constant([scores], tf.float32, shape=[1, len(scores)]),
        "detection_classes": tf.constant([classes], tf.float32, shape=[1, len(classes)]),
        "num_detections": tf.constant([len(boxes)], tf.float32),
    }
    keep = outputs or list(constants)

    class Detector(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([1, None, None, 3], input_dtype, name="input_tensor")]
        )
        def detect(self, input_tensor):
            del input_tensor  # the detections are fixed
            return {k: tf.identity(constants[k]) for k in keep}

    module = Detector()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.detect})
    return str(path)


@pytest.fixture(scope="session")
def make_detector():
    """`make(path, boxes, scores, classes, input_dtype="uint8", outputs=None)` → the path of a
    SavedModel with the TF2 Object Detection API's serving signature returning those
    detections (boxes normalised ymin, xmin, ymax, xmax) for any image."""
    return _save_detector


def _blocky_picture(height, width, seed):
    """uint8 [H, W, 3] grey 8x8 blocks of random levels (H, W multiples of 8): asymmetric under
    every flip and quarter turn, and stored losslessly by a quality-100 4:4:4 JPEG in any of them
    (a constant grey block is one integer DC coefficient; grey has Cb = Cr = 128 exactly)."""
    import numpy as np

    levels = np.random.default_rng(seed).integers(0, 256, (height // 8, width // 8))
    grey = np.kron(levels, np.ones((8, 8), np.int64)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


# EXIF orientation → the stored pixels of an upright picture: the inverse of what the tag says
# to do (checked against Pillow's `ImageOps.exif_transpose` in tests/data/test_exif.py).
STORED_FOR_ORIENTATION = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],
    3: lambda u: u[::-1, ::-1],
    4: lambda u: u[::-1],
    5: lambda u: u.transpose(1, 0, 2),
    6: lambda u: u.transpose(1, 0, 2)[::-1],  # shown turned 90 degrees clockwise
    7: lambda u: u.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda u: u.transpose(1, 0, 2)[:, ::-1],  # shown turned 90 degrees anticlockwise
}


def _oriented_jpeg(upright, orientation, exif=None):
    """JPEG bytes of `upright` stored in `orientation` with Pillow's EXIF tag 0x0112 (Pillow
    writes it big-endian, "MM"), quality 100, 4:4:4; `exif`: other EXIF bytes instead."""
    import io

    import numpy as np
    from PIL import Image

    stored = np.ascontiguousarray(STORED_FOR_ORIENTATION[orientation](upright))
    if exif is None:
        tags = Image.Exif()
        tags[0x0112] = orientation
        exif = tags.tobytes()
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", quality=100, subsampling=0, exif=exif)
    return out.getvalue()


@pytest.fixture(scope="session")
def blocky_picture():
    """`make(height, width, seed)` → `_blocky_picture`."""
    return _blocky_picture


@pytest.fixture(scope="session")
def oriented_jpeg():
    """`make(upright uint8 [H, W, 3], orientation 1-8, exif=None)` → JPEG bytes of the picture
    stored the way a camera with that EXIF orientation stores it (`_oriented_jpeg`)."""
    return _oriented_jpeg


@pytest.fixture(scope="session")
def opened_predictors():
    """{(kind, path, flip_test, decoder): Predictor} opened by `run_predict` in this run."""
    return {}


@pytest.fixture
def run_predict(capsys, monkeypatch, opened_predictors):
    """`run(*argv)` → (exit status, stdout, stderr lines) of an in-process `predict.main`.

    Each model (kind, path and options) is opened once per test run and reused (a SavedModel
    load is seconds): what these tests check is predict's handling of images, boxes, videos and
    files; opening each kind is `tests/serving/test_predictor.py`'s, and a path that fails to
    open fails every time.
    """
    # predict sets TF_CPP_MIN_LOG_LEVEL if unset: keep that out of the other tests.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    from stacked_hourglass import predict
    from stacked_hourglass.serving import predictor

    open_predictor = predictor.open_predictor

    def opened(kind, path, *, flip_test=False, decoder=None):
        key = (kind, str(path), flip_test, decoder)
        if key not in opened_predictors:
            opened_predictors[key] = open_predictor(
                kind, path, flip_test=flip_test, decoder=decoder
            )
        return opened_predictors[key]

    monkeypatch.setattr(predictor, "open_predictor", opened)

    def run(*argv):
        status = predict.main(list(argv))
        out, err = capsys.readouterr()
        return status, out, err.strip().splitlines()

    return run
