"""Fuzzing the readers of untrusted input with hypothesis: the record checks and parser, the shard
check, the evaluation pipeline, and the annotation readers on mutated copies of real files.

The property everywhere: a result of the documented type and shape, or a clear error (the
package's `ValueError`/`OSError`, TF's `InvalidArgumentError` where the docs say so); never
another exception, a crash or a silently wrong shape.

HYPOTHESIS_EXAMPLES sets the examples per test (default 50, about 30 s for this file); the
`large` variants (`pytest -m large tests/data/test_fuzz.py`) run at least 500.
"""

import json
import os
import pathlib
import shutil

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacked_hourglass.data import features, pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.data.records import items, validate
from stacked_hourglass.data.sources import _loaders, flic, mpii, source_items

K = 16
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", 50))
LARGE = max(500, EXAMPLES)
DATA = pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MPII_JSON = DATA / "mmpose" / "tests" / "data" / "mpii" / "test_mpii.json"
VALID_H5 = DATA / "pose-hg-train" / "data" / "mpii" / "annot" / "valid.h5"
FLIC_MAT = DATA / "joint-cnn-mrf" / "data_FLIC.mat"

REASONS = {
    source_items.MISSING_IMAGE, source_items.CORRUPT_IMAGE, source_items.NAN_ANNOTATION,
    source_items.BAD_ANNOTATION, source_items.BAD_SCALE, source_items.FAR_OUTSIDE,
    source_items.NO_CENTER, source_items.NO_KEYPOINTS, source_items.IMAGE_TOO_LARGE,
    mpii.NOT_IN_ANNOTATIONS,
}  # fmt: skip


def _fuzz(examples):
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing written into the repository
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _need(path):
    if not path.is_file():
        pytest.skip(f"real data file {path} is absent (see shared/data/SOURCES.md)")


# --- synthetic records and byte mutations ----------------------------------------------------


def _example(i: int, image: bytes) -> features.PersonExample:
    keypoints = np.stack([np.arange(K) + i, np.arange(K) * 2.0], axis=1)
    status = np.full(K, features.VISIBLE)
    status[5], keypoints[5] = features.NOT_ANNOTATED, 0
    return features.PersonExample(
        image_encoded=image, filename=f"img_{i}.jpg", height=24, width=32,
        center=(15.0 + i, 10.5), scale=0.2, keypoints=keypoints, keypoint_status=status,
        normalizer=5.0, headbox=(1.0, 2.0, 11.0, 12.0), dataset="synthetic", index=i, person=0,
    )  # fmt: skip


def _images():
    pixels = tf.cast(tf.random.stateless_uniform([24, 32, 3], [1, 2], 0, 255), tf.uint8)
    return [tf.io.encode_jpeg(pixels, quality=80).numpy(), tf.io.encode_png(pixels).numpy()]


RECORDS = [features.serialize_example(_example(i, image)) for i, image in enumerate(_images() * 2)]


def _shard_bytes(records) -> bytes:
    path = "/tmp/.stacked_hourglass_fuzz_base.tfrecord"  # only to get the framing bytes
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    data = pathlib.Path(path).read_bytes()
    os.remove(path)
    return data


SHARD = _shard_bytes(RECORDS[:3])


@st.composite
def mutated(draw, base: bytes, max_ops: int = 3):
    """`base` with 1..max_ops byte flips, deletions, insertions, truncations or overwrites."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "overwrite"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "truncate":
            del data[at:]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


_PROBLEM = validate.record_checker(K, True, 50_000_000, False)
# What `features.record_problem` and the pipelines may raise (documented): TF's
# InvalidArgumentError, or, when TF's message quotes bytes that are not UTF-8 (it quotes what it
# could not parse), the UnicodeDecodeError Python raises while building that error.
PARSE_ERRORS = (tf.errors.InvalidArgumentError, UnicodeDecodeError)


def _assert_usable(serialized: bytes):
    """What a record `record_problem` passes must parse to the contract's shapes and values."""
    parsed = features.parse_example_numpy(serialized, K)
    assert parsed[features.KEYPOINTS].shape == (K, 2)
    assert parsed[features.KEYPOINT_STATUS].shape == (K,)
    assert set(parsed[features.KEYPOINT_STATUS].tolist()) <= {0, 1, 2}
    assert np.isfinite(parsed[features.KEYPOINTS]).all()  # unannotated NaNs read as 0
    assert np.isfinite(parsed[features.CENTER]).all() and parsed[features.CENTER].shape == (2,)
    assert np.isfinite(parsed[features.SCALE]) and parsed[features.SCALE] > 0
    assert parsed[features.NORMALIZER] > 0
    assert parsed[features.HEADBOX].shape == (4,)


def _record_property(serialized: bytes):
    try:
        problem = _PROBLEM(tf.constant(serialized))
    except PARSE_ERRORS:
        return  # not an Example / a key of another type / an invalid JPEG header: documented
    problem = problem.numpy().decode()
    assert "\n" not in problem
    if not problem:
        _assert_usable(serialized)


payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(RECORDS).flatmap(lambda r: mutated(r, 4)),
)


@_fuzz(EXAMPLES)
@given(payloads)
def test_record_checks_on_arbitrary_and_mutated_payloads(serialized):
    _record_property(serialized)


@pytest.mark.large
@_fuzz(LARGE)
@given(payloads)
def test_record_checks_on_arbitrary_and_mutated_payloads_large(serialized):
    _record_property(serialized)


def _shard_property(tmp_path, data: bytes):
    path = str(tmp_path / "fuzz.tfrecord")
    pathlib.Path(path).write_bytes(data)
    report = validate.check_records([path], K, need_normalizer=True, max_pixels=50_000_000)
    assert report.files == [path] and report.records[path] >= 0
    assert 0 <= report.bad_records <= report.num_records
    for problem in report.problems:
        assert problem.shard == path and problem.record >= 0 and "\n" not in problem.reason
    bad = {p.record for p in report.problems}
    readable = []
    try:
        readable = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    except tf.errors.DataLossError:
        assert report.problems  # a shard TF cannot read to its end is never reported clean
    for index, serialized in enumerate(readable[: report.records[path]]):
        if index not in bad:
            _assert_usable(serialized)
    if report.ok:
        assert report.num_good == len(readable) > 0
    else:
        with pytest.raises(ValueError) as error:
            validate.raise_for_problems(report)
        assert "\n" not in str(error.value) and str(error.value).startswith(path)


shards = st.one_of(st.binary(max_size=200), mutated(SHARD, 3))


@_fuzz(EXAMPLES)
@given(data=shards)
def test_check_records_on_arbitrary_and_damaged_shards(tmp_path_factory, data):
    _shard_property(tmp_path_factory.mktemp("shard"), data)


@pytest.mark.large
@_fuzz(LARGE)
@given(data=shards)
def test_check_records_on_arbitrary_and_damaged_shards_large(tmp_path_factory, data):
    _shard_property(tmp_path_factory.mktemp("shard"), data)


def _eval_property(tmp_path, records):
    path = str(tmp_path / "valid.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    codec = HeatmapCodec(32, 8)
    try:
        batches = list(pipeline.make_eval_dataset(path, K, codec, 2, need_normalizer=True))
    except PARSE_ERRORS:
        return  # a bad record (named when the check saw it) or an undecodable image
    for images, info in batches:
        assert images.shape[1:] == (32, 32, 3) and np.isfinite(images.numpy()).all()
        assert info["keypoints"].shape[1:] == (K, 2) and info["heatmaps"].shape[1:] == (8, 8, K)
        assert np.isfinite(info["heatmaps"].numpy()).all()
    assert sum(len(images) for images, _ in batches) == len(records)


eval_records = st.lists(
    st.one_of(st.sampled_from(RECORDS), st.sampled_from(RECORDS).flatmap(lambda r: mutated(r))),
    min_size=1,
    max_size=3,
)


# Building an evaluation dataset costs ~2 s here: a few examples by default, more in `large`.
@_fuzz(max(3, EXAMPLES // 15))
@given(records=eval_records)
def test_eval_pipeline_on_mutated_records(tmp_path_factory, records):
    _eval_property(tmp_path_factory.mktemp("eval"), records)


@pytest.mark.large
@_fuzz(max(100, LARGE // 5))
@given(records=eval_records)
def test_eval_pipeline_on_mutated_records_large(tmp_path_factory, records):
    _eval_property(tmp_path_factory.mktemp("eval"), records)


# --- annotation readers on mutated copies of real files ---------------------------------------


def _check_items(result, num_joints=K):
    for item in result:
        if isinstance(item, source_items.Skipped):
            assert item.reason in REASONS and isinstance(item.detail, str)
            continue
        assert isinstance(item, source_items.PendingExample), type(item)
        example = item.example
        assert np.asarray(example.keypoints).shape == (num_joints, 2)
        assert np.asarray(example.keypoint_status).shape == (num_joints,)
        assert set(np.asarray(example.keypoint_status).tolist()) <= {0, 1, 2}
        assert len(example.center) == 2 and all(isinstance(v, float) for v in example.center)
        assert isinstance(example.scale, float) and isinstance(example.normalizer, float)
        assert isinstance(example.filename, str)
        # What passes the per-person check is finite.
        if items.check_example(example) is None:
            assert np.isfinite(example.center).all() and example.scale > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


@st.composite
def json_mutations(draw):
    """("bytes", mutated file bytes) or ("rows", rows with fields replaced, deleted or added)."""
    if draw(st.booleans()):
        return "bytes", draw(mutated(MPII_JSON.read_bytes(), 3))
    rows = json.loads(MPII_JSON.read_text())
    for _ in range(draw(st.integers(1, 4))):
        r = draw(st.integers(0, len(rows) - 1))
        field = draw(st.sampled_from(["image", "center", "scale", "joints", "joints_vis", "x"]))
        action = draw(st.sampled_from(["replace", "delete", "row"]))
        if action == "row":
            rows[r] = draw(json_values)
        elif action == "delete" and isinstance(rows[r], dict):
            rows[r].pop(field, None)
        elif isinstance(rows[r], dict):
            rows[r][field] = draw(json_values)
    return "rows", rows


def _json_property(tmp_path, mutation):
    kind, content = mutation
    path = tmp_path / "copy.json"
    if kind == "bytes":
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content))
    try:
        result = mpii.read_annotations(path, tmp_path)
    except (ValueError, OSError):
        return
    assert isinstance(result, list)
    if kind == "rows":
        assert len(result) == len(content)
    _check_items(result)


@_fuzz(EXAMPLES)
@given(mutation=st.deferred(json_mutations))
def test_mpii_json_reader_on_mutated_copies(tmp_path_factory, mutation):
    _json_property(tmp_path_factory.mktemp("json"), mutation)


@pytest.mark.large
@_fuzz(LARGE)
@given(mutation=st.deferred(json_mutations))
def test_mpii_json_reader_on_mutated_copies_large(tmp_path_factory, mutation):
    _json_property(tmp_path_factory.mktemp("json"), mutation)


@pytest.fixture(autouse=True)
def _real_files(request):
    """Fuzz tests of a real file skip, saying so, when it is absent."""
    needs = {"json": MPII_JSON, "h5": VALID_H5}
    for key, path in needs.items():
        if f"_{key}_" in request.node.name:
            _need(path)


@st.composite
def h5_mutations(draw):
    """(dataset name, replacement array) for a copy of pose-hg's valid.h5, or None: byte flips."""
    name = draw(st.sampled_from(["center", "scale", "part", "visible", "normalize", "index"]))
    shape = draw(st.sampled_from([(), (3,), (2958,), (2958, 2), (2958, 16, 2), (2958, 16), (5, 5)]))
    fill = draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e30]))
    return name, np.full(shape, fill)


def _h5_property(tmp_path, mutation, flips):
    path = tmp_path / "valid.h5"
    shutil.copy(VALID_H5, path)
    if mutation is not None:
        name, value = mutation
        with h5py.File(path, "r+") as f:
            del f[name]
            f[name] = value
    if flips:
        data = bytearray(path.read_bytes())
        for at, bit in flips:
            data[at % len(data)] ^= 1 << bit
        path.write_bytes(bytes(data))
    try:
        result = mpii.read_annotations(path, tmp_path, "valid")
    except (ValueError, OSError):
        return
    _check_items(result)


flips = st.lists(st.tuples(st.integers(0, 1 << 21), st.integers(0, 7)), max_size=3)


def _flipped_valid_h5(tmp_path, byte):
    """A copy of pose-hg's valid.h5 with bit 0 of `byte` flipped: TMP/valid.h5."""
    _need(VALID_H5)
    data = bytearray(VALID_H5.read_bytes())
    data[byte] ^= 1
    (tmp_path / "valid.h5").write_bytes(bytes(data))
    return tmp_path / "valid.h5"


def test_damaged_h5_is_a_value_error_naming_the_file(tmp_path):
    """Found by the fuzz: h5py's RuntimeError ('wrong B-tree signature') for a damaged .h5."""
    with pytest.raises(ValueError, match="valid.h5"):
        mpii.read_annotations(_flipped_valid_h5(tmp_path, 136), tmp_path, "valid")


def test_h5_entry_that_is_not_a_dataset_is_a_value_error_naming_it(tmp_path):
    """Found by the fuzz: a flipped bit (byte 1416) turned valid.h5's `center` into a committed
    type, and reading it raised TypeError; a group in a dataset's place is the same case."""
    flipped = _flipped_valid_h5(tmp_path, 1416)
    with pytest.raises(ValueError, match="valid.h5: 'center' is a Datatype, not a dataset"):
        mpii.read_annotations(flipped, tmp_path, "valid")
    grouped = tmp_path / "grouped.h5"
    shutil.copy(VALID_H5, grouped)
    with h5py.File(grouped, "r+") as f:
        del f["part"]
        f.create_group("part")
    with pytest.raises(ValueError, match="grouped.h5: 'part' is a Group, not a dataset"):
        mpii.read_annotations(grouped, tmp_path, "valid")


# Reading the 2958 people of valid.h5 costs ~0.7 s: fewer examples by default.
@_fuzz(max(8, EXAMPLES // 6))
@given(mutation=st.none() | h5_mutations(), flips=flips)
def test_pose_hg_h5_reader_on_mutated_copies(tmp_path_factory, mutation, flips):
    _h5_property(tmp_path_factory.mktemp("h5"), mutation, flips)


@pytest.mark.large
@_fuzz(LARGE)
@given(mutation=st.none() | h5_mutations(), flips=flips)
def test_pose_hg_h5_reader_on_mutated_copies_large(tmp_path_factory, mutation, flips):
    _h5_property(tmp_path_factory.mktemp("h5"), mutation, flips)


# .mat files: scipy.io.loadmat (1.17.1) dies of SIGSEGV/SIGBUS on some 1-bit flips of a valid
# file (found by this fuzz: byte 93625 of data_FLIC.mat), which no Python code can catch;
# `_loaders.load_mat` reads in a child process, so such a file is one error naming it. Whether
# that flip faults or raises depends on the memory around scipy's out-of-bounds read (it raised
# ZeroDivisionError in one run, faulted in another), so the crash itself is made on purpose below.
# Byte-level fuzzing would spend a process per example: the .mat readers are fuzzed on valid
# files with mutated contents instead.


def test_a_damaged_mat_file_is_one_error_naming_it(tmp_path):
    _need(FLIC_MAT)
    data = bytearray(FLIC_MAT.read_bytes())
    data[93625] ^= 1
    bad = tmp_path / "examples.mat"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"^{bad}: "):
        flic.read_examples_mat(bad, tmp_path, "train")


def test_a_mat_reader_that_crashes_is_one_error_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "gt.mat"
    scipy.io.savemat(path, {"headboxes_src": np.zeros((2, 2, 3))})
    assert mpii.read_headboxes(path).shape == (3, 4)  # the child reads a sound file
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(_loaders, "_LOADMAT_CHILD", crash)  # what scipy did on the flip
    with pytest.raises(ValueError, match=f"^{path}: the .mat reader .* crashed .*SIGSEGV"):
        mpii.read_headboxes(path)


headbox_arrays = st.one_of(
    st.sampled_from([(2, 2, 7), (2, 2), (4, 7), (2, 2, 0), (7,), (), (2, 2, 3, 1)]).flatmap(
        lambda shape: st.sampled_from([0.0, np.nan, -1e300, 5.0]).map(lambda v: np.full(shape, v))
    ),
    st.sampled_from([np.array(["a", "bc"]), np.array([[1, 2], [3, 4]], np.int8)]),
)


def _headbox_property(tmp_path, value, name):
    path = tmp_path / "gt.mat"
    scipy.io.savemat(path, {name: value})
    try:
        boxes = mpii.read_headboxes(path)
    except (ValueError, OSError):
        return
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.dtype == np.float64


@pytest.mark.large  # ~10 s of h5 files: run by .ci/run (the other readers' fuzz stays)
@_fuzz(max(10, EXAMPLES // 2))
@given(value=headbox_arrays, name=st.sampled_from(["headboxes_src", "headboxes"]))
def test_headboxes_reader_on_mutated_contents(tmp_path_factory, value, name):
    _headbox_property(tmp_path_factory.mktemp("mat"), value, name)


@_fuzz(EXAMPLES)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_split_file_reader_on_arbitrary_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("split") / "split.txt"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    try:
        entries = mpii.read_split_file(path)
    except ValueError:
        return
    assert all(isinstance(e.index, int) and isinstance(e.person, int) for e in entries)
