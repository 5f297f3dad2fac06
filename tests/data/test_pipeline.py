"""The tf.data pipelines: augmented crops and targets that decode back to the annotation."""

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.config import DataConfig
from stacked_hourglass.data import features, geometry, pipeline
from stacked_hourglass.data.codec import HeatmapCodec, decode_heatmaps
from stacked_hourglass.data.records.split import Split


def _record(keypoints, status, center=(120.0, 100.0), scale=0.32, index=0, image=None):
    """A serialized MPII record; `image` uint8 [H, W, 3] (default: 200 x 240 black), as JPEG."""
    image = np.zeros([200, 240, 3], np.uint8) if image is None else image
    example = features.PersonExample(
        image_encoded=tf.io.encode_jpeg(image).numpy(),
        filename="x.jpg",
        height=image.shape[0],
        width=image.shape[1],
        center=center,
        scale=scale,
        keypoints=np.asarray(keypoints, np.float64),
        keypoint_status=np.asarray(status, np.int64),
        normalizer=10.0,
        headbox=None,
        dataset="mpii",
        index=index,
        person=0,
    )
    return features.serialize_example(example)


def _mpii_keypoints(rng):
    return np.column_stack([rng.uniform(100, 140, 16), rng.uniform(80, 120, 16)])


def _write_records(path, rng, count):
    """`count` MPII records with random keypoints; returns their keypoints [count, 16, 2]."""
    keypoints = [_mpii_keypoints(rng) for _ in range(count)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, kps in enumerate(keypoints):
            writer.write(_record(kps, np.full(16, 2), index=i))
    return np.stack(keypoints)


def _decode_back(config, codec, record, seed):
    """Crop + augment + heatmaps, then decode + inverse, all with the sample's parameters."""
    image, heatmaps = pipeline.make_training_example(record, seed, config, codec)
    aug_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    matrix, mirrored = pipeline.augmentation_matrix(record, aug_seed, config, codec.input_size)
    back = codec.decode_to_original(heatmaps[None], matrix[None])[0][0]
    perm = tf.constant(joints.MPII.flip_permutation())
    # Channel j of a mirrored sample holds joint perm[j]: swap back before comparing.
    back = tf.where(mirrored, tf.gather(back, perm), back)
    return image, heatmaps, back, mirrored


def test_augmented_heatmaps_decode_back_within_half_pixel():
    """crop + rotation + scale + flip -> Gaussian -> argmax/quarter shift -> inverse crop."""
    rng = np.random.default_rng(0)
    config = DataConfig(dataset="mpii", rotation_prob=1.0)
    codec = HeatmapCodec(256, 64, config.sigma)
    errors = []
    mirrored_seen = set()
    for i in range(12):
        kps = _mpii_keypoints(rng)
        serialized = _record(kps, np.full(16, 2))
        record = features.parse_example(tf.constant(serialized), 16)
        _, heatmaps, back, mirrored = _decode_back(config, codec, record, tf.constant([i, 7]))
        assert heatmaps.shape == (64, 64, 16)
        mirrored_seen.add(bool(mirrored))
        errors.append(np.linalg.norm(back.numpy() - kps, axis=-1).max())
    # Side 200·0.32 = 64 original px over 64 heatmap px, × up to 1.25 scale jitter.
    assert max(errors) < 0.5, errors
    assert mirrored_seen == {True, False}


def test_same_results_inside_tf_data():
    """Eager and tf.data (graph) runs of the same sample agree."""
    rng = np.random.default_rng(1)
    serialized = _record(_mpii_keypoints(rng), np.full(16, 2))
    config = DataConfig(dataset="mpii", rotation_prob=1.0)
    codec = HeatmapCodec(128, 32)
    seed = tf.constant([3, 4], tf.int64)
    eager = pipeline.make_training_example(
        features.parse_example(serialized, 16), seed, config, codec
    )
    ds = tf.data.Dataset.from_tensors((serialized, seed)).map(
        lambda s, sd: pipeline.make_training_example(
            features.parse_example(s, 16), sd, config, codec
        )
    )
    graph = next(iter(ds))
    for a, b in zip(eager, graph, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_training_and_evaluation_crop_with_decode_crop():
    """Both crop with `geometry.decode_crop` (antialiased, the window only); `antialias=False`
    is the one bilinear warp of the whole image; the targets do not depend on it."""
    rng = np.random.default_rng(5)
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    picture = tf.image.resize(coarse[None], (360, 480))[0].numpy()
    picture = np.clip(picture + rng.normal(0, 30, picture.shape), 0, 255).astype(np.uint8)
    # Side 200 * 1.6 = 320 original pixels onto 64: the crop shrinks the image 5x (JPEG ratio 4).
    keypoints = np.column_stack([rng.uniform(150, 300, 16), rng.uniform(100, 250, 16)])
    serialized = _record(keypoints, np.full(16, 2), (230.0, 170.0), 1.6, image=picture)
    record = features.parse_example(tf.constant(serialized), 16)
    encoded = record[features.IMAGE_ENCODED]
    config = DataConfig(dataset="mpii", rotation_prob=1.0, color_jitter=0.0)
    codec = HeatmapCodec(64, 16)
    seed = tf.constant([2, 9])
    aug_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    matrix, _ = pipeline.augmentation_matrix(record, aug_seed, config, codec.input_size)
    image, heatmaps = pipeline.make_training_example(record, seed, config, codec)
    np.testing.assert_array_equal(image, geometry.decode_crop(encoded, matrix, 64))
    old_image, old_heatmaps = pipeline.make_training_example(
        record, seed, config, codec, antialias=False
    )
    plain = geometry.warp_image(pipeline.decode_image(encoded), matrix, 64)
    np.testing.assert_array_equal(old_image, plain)
    np.testing.assert_array_equal(old_heatmaps, heatmaps)

    # The pixel noise is finer than the crop's pixels: averaged, it is much weaker than when
    # sampled (pixel-to-pixel differences in the middle of the crop, away from any border).
    def roughness(crop):
        return np.std(np.diff(crop.numpy()[16:48, 16:48], axis=1))

    assert roughness(image) < 0.5 * roughness(plain)

    image, info = pipeline.make_eval_example(record, codec)
    np.testing.assert_array_equal(image, geometry.decode_crop(encoded, info["matrix"], 64))
    old_image, old_info = pipeline.make_eval_example(record, codec, antialias=False)
    np.testing.assert_array_equal(
        old_image, geometry.warp_image(pipeline.decode_image(encoded), info["matrix"], 64)
    )
    np.testing.assert_array_equal(old_info["heatmaps"], info["heatmaps"])


def test_flip_swaps_left_and_right_joints():
    mpii = joints.MPII
    kps = np.zeros((16, 2))
    kps[:, 1] = 100.0
    kps[:, 0] = 120.0
    kps[mpii.index("l_wrist")] = [130.0, 90.0]  # the person's left wrist is on the image right
    kps[mpii.index("r_wrist")] = [105.0, 110.0]
    status = np.zeros(16, np.int64)
    status[[mpii.index("l_wrist"), mpii.index("r_wrist")]] = 2
    record = features.parse_example(tf.constant(_record(kps, status)), 16)
    config = DataConfig(dataset="mpii", rotation=0, scale_aug=0, color_jitter=0)
    codec = HeatmapCodec(256, 64)
    peaks = {}
    for i in range(20):
        seed = tf.constant([i, 0])
        _, heatmaps = pipeline.make_training_example(record, seed, config, codec)
        aug_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        mirrored = bool(geometry.sample_augmentation(aug_seed, 0, 0, 0, True)[2])
        coords, _ = decode_heatmaps(heatmaps[None])  # heatmap pixels
        peaks[mirrored] = coords.numpy()[0]
    assert set(peaks) == {True, False}
    lw, rw = mpii.index("l_wrist"), mpii.index("r_wrist")
    plain, flipped = peaks[False], peaks[True]
    # Mirrored: the l_wrist channel now holds the old right wrist, reflected (x -> 63 - x);
    # each decode is within 0.25 px of the truth.
    np.testing.assert_allclose(flipped[lw], [63 - plain[rw][0], plain[rw][1]], atol=0.51)
    np.testing.assert_allclose(flipped[rw], [63 - plain[lw][0], plain[lw][1]], atol=0.51)
    # A mirrored camera-facing person still faces the camera: their left stays on the image right.
    assert flipped[lw][0] > flipped[rw][0] and plain[lw][0] > plain[rw][0]


def test_joint_weights_follow_the_status_and_the_flip():
    """--unlabelled=ignore: weight 0 for a joint that is not annotated, 1 for any other (also
    one outside the crop); a mirrored sample's weights are swapped with its channels."""
    mpii = joints.MPII
    kps = np.column_stack([np.full(16, 120.0), np.full(16, 100.0)])
    kps[mpii.index("l_ankle")] = [5000.0, 5000.0]  # annotated, far outside every crop
    status = np.full(16, 2, np.int64)
    unlabelled = [mpii.index(n) for n in ("l_wrist", "l_elbow", "head_top")]
    status[unlabelled] = features.NOT_ANNOTATED
    record = features.parse_example(tf.constant(_record(kps, status)), 16)
    config = DataConfig(dataset="mpii", rotation=0, scale_aug=0, color_jitter=0)
    codec = HeatmapCodec(64, 16)
    expected = np.ones(16, np.float32)
    expected[unlabelled] = 0.0
    perm = mpii.flip_permutation()
    seen = set()
    for i in range(12):
        seed = tf.constant([i, 0])
        image, heatmaps, weights = pipeline.make_training_example(
            record, seed, config, codec, joint_weights=True
        )
        plain_image, plain_heatmaps = pipeline.make_training_example(record, seed, config, codec)
        # The weights add nothing else: the same crop and targets as without them.
        np.testing.assert_array_equal(image, plain_image)
        np.testing.assert_array_equal(heatmaps, plain_heatmaps)
        aug_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        mirrored = bool(geometry.sample_augmentation(aug_seed, 0, 0, 0, True)[2])
        seen.add(mirrored)
        want = expected[perm] if mirrored else expected
        np.testing.assert_array_equal(weights, want)
        # The annotated ankle outside the crop: an all-zero target, trained on (weight 1).
        ankle = perm[mpii.index("l_ankle")] if mirrored else mpii.index("l_ankle")
        assert weights[ankle] == 1.0 and np.all(heatmaps[..., ankle] == 0.0)
    assert seen == {True, False}
    # The flip moved the left wrist's 0 to the right wrist's channel.
    assert expected[perm][mpii.index("r_wrist")] == 0.0 and expected[mpii.index("r_wrist")] == 1


@pytest.mark.parametrize("unlabelled", ["auto", "zero", "ignore"])
def test_make_train_dataset_sample_weights_only_when_ignoring(tmp_path, unlabelled):
    """ignore: (image, targets, {name: weights [B, 1, 1, K]}); zero (mpii's auto): (image,
    targets) exactly as before the rule existed."""
    rng = np.random.default_rng(5)
    status = np.full(16, 2, np.int64)
    status[3] = features.NOT_ANNOTATED
    with tf.io.TFRecordWriter(str(tmp_path / "train-0.tfrecord")) as writer:
        for i in range(4):
            writer.write(_record(_mpii_keypoints(rng), status, index=i))
    config = DataConfig(
        dataset="mpii",
        train_files=str(tmp_path / "train-*.tfrecord"),
        unlabelled=unlabelled,
        flip=False,
    )
    names = ["heatmaps_1", "heatmaps_2"]
    batch = next(iter(pipeline.make_train_dataset(config, HeatmapCodec(64, 16), 2, names)))
    if unlabelled != "ignore":
        assert len(batch) == 2
        return
    _, targets, weights = batch
    assert sorted(weights) == names and weights["heatmaps_1"].shape == (2, 1, 1, 16)
    expected = np.ones((2, 1, 1, 16), np.float32)
    expected[..., 3] = 0.0
    np.testing.assert_array_equal(weights["heatmaps_2"], expected)
    assert np.all(targets["heatmaps_1"][..., 3] == 0.0)


@pytest.fixture
def not_converted(monkeypatch):
    """Fails the test if autograph converts any of the package's functions while it runs: every
    call autograph makes in converted code, cached conversions included, goes through
    `converted_call` (the pipeline's functions are marked `do_not_convert`)."""
    from tensorflow.python.autograph.impl import api

    seen, converted_call = [], api.converted_call

    def recording(f, *args, **kwargs):
        module = getattr(f, "__module__", None) or ""
        if module.startswith("stacked_hourglass"):
            seen.append(f"{module}.{getattr(f, '__qualname__', f)}")
        return converted_call(f, *args, **kwargs)

    monkeypatch.setattr(api, "converted_call", recording)
    yield
    assert seen == [], f"autograph converted {len(seen)} package functions: {seen[:5]}"


def test_make_train_dataset_batches_and_targets(tmp_path, not_converted):
    _write_records(tmp_path / "train-0.tfrecord", np.random.default_rng(2), 5)
    _write_records(tmp_path / "train-1.tfrecord", np.random.default_rng(3), 5)
    # No rotation or scaling: every joint stays in the window (the claim checked below).
    config = DataConfig(dataset="mpii", train_files=str(tmp_path / "train-*.tfrecord"),
                        rotation=0.0, scale_aug=0.0)  # fmt: skip
    codec = HeatmapCodec(64, 16)
    names = ["heatmaps_1", "heatmaps_2"]
    ds = pipeline.make_train_dataset(config, codec, batch_size=4, output_names=names, seed=1)
    batches = list(ds.take(4))  # 16 samples from 10 records: the dataset repeats
    for images, targets in batches:
        assert images.shape == (4, 64, 64, 3) and images.dtype == tf.float32
        assert sorted(targets) == names
        assert targets["heatmaps_1"].shape == (4, 16, 16, 16)
        np.testing.assert_array_equal(targets["heatmaps_1"], targets["heatmaps_2"])
        # Every joint is annotated and the window holds the person: one peak per channel.
        assert np.all(targets["heatmaps_1"].numpy().max(axis=(1, 2)) > 0.5)


def test_make_train_dataset_without_files_names_the_pattern(tmp_path):
    config = DataConfig(train_files=str(tmp_path / "nothing-*.tfrecord"))
    with pytest.raises(FileNotFoundError, match="nothing-"):
        pipeline.make_train_dataset(config, HeatmapCodec(64, 16), 2, ["heatmaps_1"])


def test_make_eval_dataset_targets_decode_to_the_annotation(tmp_path, not_converted):
    path = tmp_path / "valid-0.tfrecord"
    keypoints = _write_records(path, np.random.default_rng(4), 5)
    codec = HeatmapCodec(64, 16)
    ds = pipeline.make_eval_dataset(str(path), 16, codec, batch_size=2)
    batches = list(ds)
    assert [len(images) for images, _ in batches] == [2, 2, 1]  # ordered, the last one partial
    images, info = batches[0]
    assert images.shape == (2, 64, 64, 3)
    assert info["heatmaps"].shape == (2, 16, 16, 16) and info["matrix"].shape == (2, 3, 3)
    index = np.concatenate([i["index"].numpy() for _, i in batches])
    np.testing.assert_array_equal(index, np.arange(5))
    for _, info in batches:
        preds, _ = codec.decode_to_original(info["heatmaps"], info["matrix"])
        # 0.25 heatmap px = 1 crop px = 1 original px (side 64 original px onto 64).
        np.testing.assert_allclose(preds, info["keypoints"], atol=1.0 + 1e-4)
        np.testing.assert_allclose(info["keypoints"], keypoints[info["index"].numpy()], atol=1e-4)
    assert Split.open(str(path)).num_records == 5


@pytest.mark.parametrize("num_files", [1, 2])
def test_make_train_dataset_per_input_pipeline(tmp_path, num_files):
    """Under a strategy: the per-replica batch, with files (or records) split per worker."""
    for i in range(num_files):
        _write_records(tmp_path / f"train-{i}.tfrecord", np.random.default_rng(i), 4)
    config = DataConfig(dataset="mpii", train_files=str(tmp_path / "train-*.tfrecord"))
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    ds = pipeline.make_train_dataset(
        config, HeatmapCodec(64, 16), 4, ["heatmaps_1"], input_context=context
    )
    images, targets = next(iter(ds))
    assert images.shape == (2, 64, 64, 3)  # global batch 4 over 2 replicas
    assert targets["heatmaps_1"].shape == (2, 16, 16, 16)
