"""tf.data input pipelines: sharded TFRecords -> (image, targets) batches.

Training: files -> interleaved parallel reads -> shuffle -> parse -> decode -> one affine warp
(crop + rotation + scale + flip) -> colour jitter -> Gaussian heatmaps -> batch -> prefetch.
Evaluation: the same crop without augmentation, keeping what scoring needs.
"""

from __future__ import annotations

import tensorflow as tf

from stacked_hourglass.config import DataConfig
from stacked_hourglass.data import features, geometry
from stacked_hourglass.data.codec import HeatmapCodec


def list_files(patterns: str) -> list[str]:
    """Sorted files matching comma-separated glob patterns; `FileNotFoundError` if none match."""
    files = []
    for pattern in (p.strip() for p in patterns.split(",")):
        if pattern:
            files.extend(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {patterns!r}")
    return sorted(set(files))


def decode_image(encoded):
    """JPEG/PNG bytes -> float32 [H, W, 3] in [0, 1]."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def _valid_joints(record):
    return record[features.KEYPOINT_STATUS] > features.NOT_ANNOTATED


def augmentation_matrix(record, seed, config: DataConfig, input_size: int):
    """The sample's crop matrix with its random rotation, scale and flip.

    Args:
        record: output of `features.parse_example`.
        seed: [2] stateless seed of the geometric augmentation.
        config: `DataConfig` (augmentation ranges).
        input_size: crop side S.

    Returns:
        (matrix float32 [3, 3] original pixels -> crop pixels, mirrored bool []).
    """
    angle, factor, mirrored = geometry.sample_augmentation(
        seed,
        rotation=config.rotation,
        rotation_prob=config.rotation_prob,
        scale=config.scale_aug,
        flip=config.flip,
    )
    matrix = geometry.crop_matrix(
        record[features.CENTER],
        record[features.SCALE] * factor,
        input_size,
        rotation=angle,
        flip=mirrored,
    )
    return matrix, mirrored


def make_training_example(record, seed, config: DataConfig, codec: HeatmapCodec):
    """One augmented crop and its target heatmaps from a parsed record.

    Args:
        record: output of `features.parse_example`.
        seed: [2] stateless seed for this sample.
        config: `DataConfig`.
        codec: crop size and target encoding.

    Returns:
        (image float32 [S, S, 3] in [0, 1], heatmaps float32 [H, H, K]).
    """
    joint_set = config.joint_set
    aug_seed, jitter_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    matrix, mirrored = augmentation_matrix(record, aug_seed, config, codec.input_size)
    image = geometry.warp_image(
        decode_image(record[features.IMAGE_ENCODED]), matrix, codec.input_size
    )
    if config.color_jitter > 0:
        image = geometry.color_jitter(image, jitter_seed, config.color_jitter)
    keypoints = geometry.apply_affine(matrix, record[features.KEYPOINTS])
    valid = _valid_joints(record)
    # After a mirror, the person's left joints lie where the right ones were: swap channels.
    perm = tf.constant(joint_set.flip_permutation())
    keypoints = tf.where(mirrored, tf.gather(keypoints, perm), keypoints)
    valid = tf.where(mirrored, tf.gather(valid, perm), valid)
    return image, codec.encode(keypoints, valid)


def make_eval_example(record, codec: HeatmapCodec):
    """The unaugmented crop of a parsed record, with what scoring needs.

    Returns:
        (image float32 [S, S, 3], info dict: "matrix" [3, 3] original -> crop, "keypoints"
        [K, 2] original pixels, "status" [K], "normalizer" [], "center" [2], "scale" [],
        "index" [], "person" [], "heatmaps" [H, H, K] unaugmented targets).
    """
    matrix = geometry.crop_matrix(record[features.CENTER], record[features.SCALE], codec.input_size)
    image = geometry.warp_image(
        decode_image(record[features.IMAGE_ENCODED]), matrix, codec.input_size
    )
    crop_keypoints = geometry.apply_affine(matrix, record[features.KEYPOINTS])
    info = {
        "matrix": matrix,
        "keypoints": record[features.KEYPOINTS],
        "status": record[features.KEYPOINT_STATUS],
        "normalizer": record[features.NORMALIZER],
        "center": record[features.CENTER],
        "scale": record[features.SCALE],
        "index": record[features.SOURCE_INDEX],
        "person": record[features.SOURCE_PERSON],
        "heatmaps": codec.encode(crop_keypoints, _valid_joints(record)),
    }
    return image, info


def _shard_files(files, input_context):
    if input_context is None or input_context.num_input_pipelines <= 1:
        return tf.data.Dataset.from_tensor_slices(files), False
    if len(files) >= input_context.num_input_pipelines:
        ds = tf.data.Dataset.from_tensor_slices(files)
        return ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id), False
    # Fewer files than workers: every worker reads all files and keeps every n-th record.
    return tf.data.Dataset.from_tensor_slices(files), True


def make_train_dataset(
    config: DataConfig,
    codec: HeatmapCodec,
    batch_size: int,
    output_names: list[str],
    seed: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Infinite shuffled, augmented batches for `model.fit`.

    Args:
        config: `DataConfig`.
        codec: crop size and target encoding.
        batch_size: the global batch size; divided per replica when `input_context` is given.
        output_names: model output names; every output gets the same target heatmaps.
        seed: seed of the file order, the shuffle and the augmentation.
        input_context: from `strategy.distribute_datasets_from_function`; shards files per
            input pipeline (worker).

    Returns:
        Dataset of (image [B, S, S, 3], {name: heatmaps [B, H, H, K]}), repeated forever.
    """
    files = list_files(config.train_files)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    ds, shard_records = _shard_files(files, input_context)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    ds = ds.shuffle(config.shuffle_buffer, seed=seed)
    # Per-sample stateless seeds make the augmentation reproducible for a given record order.
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))
    num_joints = config.joint_set.num_joints

    def prepare(serialized, sample_seed):
        record = features.parse_example(serialized, num_joints)
        return make_training_example(record, sample_seed, config, codec)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(
        lambda image, heatmaps: (image, {name: heatmaps for name in output_names}),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(
    files: str | list[str], num_joints: int, codec: HeatmapCodec, batch_size: int
):
    """Unaugmented, ordered batches (image, info) for evaluation; see `make_eval_example`."""
    file_list = list_files(files) if isinstance(files, str) else list(files)
    ds = tf.data.TFRecordDataset(file_list)
    ds = ds.map(
        lambda s: make_eval_example(features.parse_example(s, num_joints), codec),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def count_records(files: str | list[str]) -> int:
    """Number of records in TFRecord files (reads them once)."""
    file_list = list_files(files) if isinstance(files, str) else list(files)
    return int(tf.data.TFRecordDataset(file_list).reduce(0, lambda n, _: n + 1))
