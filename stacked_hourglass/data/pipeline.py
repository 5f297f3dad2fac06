"""tf.data input pipelines: sharded TFRecords -> (image, targets) batches.

Training: files -> interleaved parallel reads, each record checked -> shuffle -> parse -> the
crop (`geometry.decode_crop`: decode only the window the crop reads, a JPEG downscaled in the DCT
domain, area averaging to the crop's scale, one bilinear warp for crop + rotation + scale + flip)
-> colour jitter -> Gaussian heatmaps (and, under `--unlabelled=ignore`, per-joint loss weights:
`joint_loss_weights`) -> batch -> prefetch. Evaluation: the same crop without
augmentation, keeping what scoring needs. The SavedModel crops with the same function.

`antialias=False` (in `make_training_example`, `make_eval_example` and the dataset builders)
gives the crop of earlier versions: the whole image decoded, one bilinear warp from full
resolution (it aliases when the crop shrinks the image); kept for comparisons
(`bench/bench_pipeline.py`) and to reproduce older runs.

Records are not trusted (`checked_records`). A shard no manifest vouches for
(`data.records.split`) is read with its byte count known, and
every record goes through `features.record_problem` (fields present with the right lengths,
finite centre and annotated keypoints, scale > 0, an image whose header gives at most
`DataConfig.max_pixels` pixels) before anything decodes it. With `on_bad_record="fail"` a bad
record stops training with `InvalidArgumentError: assertion failed: [SHARD: record N: what is
wrong]`; with "skip" it is dropped, with one warning per shard on stderr.

What `tf.data` cannot attribute to a shard and record, because the op raises before any check
can name it: bytes that are not a `tf.train.Example`, a key holding the wrong type, an invalid
JPEG header, and an image that fails only when decoded (a truncated JPEG whose crop reaches
into the missing part: "jpeg::Uncompress failed"; since only the crop's window is decoded, a crop
that lies wholly above the cut reads intact pixels and is used). With "fail" these stop training
with TF's own message (and, when the bytes TF quotes in a parse error are not UTF-8, Python
reports a UnicodeDecodeError instead); with "skip" they are dropped with TF's one-line warning,
which does not name the shard.
`data.records.split.Split.check` names every one of them, by shard and record, before
training starts.

The shards are listed once per run (`split.Split.open`); the trainer passes the opened `Split`
to every epoch's dataset (`open_splits`).

Evaluation never skips: it scores every record, in order.

The functions given to `tf.data` are marked `do_not_convert`: the data code uses `tf.cond` and
`tf.where`, never Python control flow on tensors, so autograph's conversion of it (about
400 functions, seconds at every process start) would change nothing. The package's own
`tf.function`s are built with `autograph=False` for the same reason.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Sequence

import tensorflow as tf

from stacked_hourglass.config import DataConfig, check_same_joints
from stacked_hourglass.data import features, geometry, images
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.data.records import validate
from stacked_hourglass.data.records.split import Split

ON_BAD_RECORD = ("fail", "skip")


def decode_image(encoded):
    """JPEG/PNG bytes -> the upright image (`images.decode_upright`), float32 [H, W, 3] in
    [0, 1]."""
    image = images.decode_upright(encoded)
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


def make_training_example(
    record,
    seed,
    config: DataConfig,
    codec: HeatmapCodec,
    *,
    antialias: bool = True,
    joint_weights: bool = False,
):
    """One augmented crop and its target heatmaps from a parsed record.

    Args:
        record: output of `features.parse_example`.
        seed: [2] stateless seed for this sample.
        config: `DataConfig`.
        codec: crop size and target encoding.
        antialias: see the module docstring (the keypoints do not depend on it).
        joint_weights: also return the joints' loss weights (`--unlabelled=ignore`).

    Returns:
        (image float32 [S, S, 3] in [0, 1], heatmaps float32 [H, H, K]), and with
        `joint_weights` weights float32 [K] (`joint_loss_weights`) after them.
    """
    joint_set = config.joint_set
    aug_seed, jitter_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    matrix, mirrored = augmentation_matrix(record, aug_seed, config, codec.input_size)
    image = geometry.decode_crop(
        record[features.IMAGE_ENCODED], matrix, codec.input_size, antialias=antialias
    )
    if config.color_jitter > 0:
        image = geometry.color_jitter(image, jitter_seed, config.color_jitter)
    keypoints = geometry.apply_affine(matrix, record[features.KEYPOINTS])
    valid = _valid_joints(record)
    # After a mirror, the person's left joints lie where the right ones were: swap channels.
    perm = tf.constant(joint_set.flip_permutation())
    keypoints = tf.where(mirrored, tf.gather(keypoints, perm), keypoints)
    valid = tf.where(mirrored, tf.gather(valid, perm), valid)
    heatmaps = codec.encode(keypoints, valid)
    if joint_weights:
        return image, heatmaps, joint_loss_weights(valid)
    return image, heatmaps


def joint_loss_weights(annotated):
    """The joints' loss weights under `--unlabelled=ignore` (`training/losses.py`).

    A joint that is not annotated (`features.NOT_ANNOTATED`) weighs 0; every other joint 1,
    also one whose target heatmap is all zeros for another reason (it lies outside the crop
    after augmentation): as with "zero", the network learns that it is not in the crop.

    Args:
        annotated: bool [..., K], in the crop's joint order (after a flip's left/right swap).

    Returns:
        float32 [..., K].
    """
    return tf.cast(annotated, tf.float32)


def make_eval_example(record, codec: HeatmapCodec, *, antialias: bool = True):
    """The unaugmented crop of a parsed record, with what scoring needs (`antialias`: see the
    module docstring).

    Returns:
        (image float32 [S, S, 3], info dict: "matrix" [3, 3] original -> crop, "keypoints"
        [K, 2] original pixels, "status" [K], "normalizer" [], "center" [2], "scale" [],
        "index" [], "person" [], "heatmaps" [H, H, K] unaugmented targets).
    """
    matrix = geometry.crop_matrix(record[features.CENTER], record[features.SCALE], codec.input_size)
    image = geometry.decode_crop(
        record[features.IMAGE_ENCODED], matrix, codec.input_size, antialias=antialias
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


def _files_and_sizes(split: Split):
    """Dataset of (path, size in bytes) of the split's shards."""
    return tf.data.Dataset.from_tensor_slices(
        (list(split.files), tf.constant(split.sizes, tf.int64))
    )


def _numbered(path, size, count_bytes: bool) -> tf.data.Dataset:
    """(number, is_end, serialized, bytes read) of every record of a shard, in order.

    With `count_bytes`, TF's errors end the shard, and one element more (is_end) carries the
    bytes read with their framing: a shard TF stopped reading early (a corrupted or truncated
    record) or with bytes after its last record does not add up to `size`. Without, the shard is
    read as it is (a manifest vouches for its size) and a CRC error raises TF's own error.
    """
    records = tf.data.TFRecordDataset(path)
    if not count_bytes:
        zero = tf.constant(0, tf.int64)
        return records.enumerate().map(lambda n, s: (n, tf.constant(False), s, zero))
    records = records.ignore_errors().map(lambda s: (tf.constant(False), s))
    records = records.concatenate(
        tf.data.Dataset.from_tensors((tf.constant(True), tf.constant("")))
    )

    def count(state, element):
        number, total = state
        is_end, serialized = element
        length = tf.cast(tf.strings.length(serialized), tf.int64) + validate.RECORD_OVERHEAD
        new_total = total + tf.where(is_end, tf.constant(0, tf.int64), length)
        state = (number + 1 - tf.cast(is_end, tf.int64), new_total)
        return state, (number, is_end, serialized, new_total)

    return records.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), count)


def _with_messages(ds, path, size, num_joints, need_normalizer, max_pixels) -> tf.data.Dataset:
    """(is_end, serialized, message): "" for a usable record, else "SHARD: record N: problem"."""
    problem_of = validate.record_checker(num_joints, need_normalizer, max_pixels, False)

    def check(number, is_end, serialized, total):
        problem = tf.cond(
            is_end,
            lambda: tf.where(
                tf.equal(total, size),
                tf.constant(""),
                tf.strings.format(
                    "cannot be read ({} of {} bytes read): the shard is corrupted or truncated, "
                    "the rest of it is lost",
                    (total, size),
                ),
            ),
            lambda: problem_of(serialized),
        )
        message = tf.where(
            tf.equal(problem, ""),
            tf.constant(""),
            tf.strings.join([path, ": record ", tf.strings.as_string(number), ": ", problem]),
        )
        return is_end, serialized, message

    return ds.map(
        tf.autograph.experimental.do_not_convert(check), num_parallel_calls=tf.data.AUTOTUNE
    )


def _fail_on_problems(ds) -> tf.data.Dataset:
    """The records, raising `InvalidArgumentError` with the message of the first bad one."""

    def assert_usable(is_end, serialized, message):
        usable = tf.debugging.Assert(tf.equal(message, ""), [message])
        with tf.control_dependencies([usable]):
            return is_end, tf.identity(serialized)

    ds = ds.map(assert_usable)
    return ds.filter(lambda is_end, _: tf.logical_not(is_end)).map(lambda _, s: s)


def _skip_problems(ds, path, warned) -> tf.data.Dataset:
    """The usable records; the first bad one of the shard is named on stderr (once per shard
    with `warned`, else once per pass), the end of the shard on its own."""
    # Records the parser itself rejects (not an Example, a key of another type, an invalid JPEG
    # header) raise inside the check: dropped here, with TF's warning (which cannot name them).
    ds = ds.ignore_errors(log_warning=True)

    def warn_once(pass_warned, element):
        is_end, serialized, message = element
        bad = tf.not_equal(message, "")
        key = tf.strings.join([path, tf.where(is_end, "#end", "")])
        seen = pass_warned & tf.logical_not(is_end)
        if warned is not None:
            seen = seen | (warned.lookup(key) > 0)

        def warn():
            ops = [
                tf.print(
                    "WARNING: on_bad_record=skip: skipping",
                    message,
                    "(named once per shard; python -m stacked_hourglass.inspect_records lists "
                    "every problem)",
                    output_stream=sys.stderr,
                )
            ]
            if warned is not None:
                ops.append(warned.insert(key, tf.constant(1, tf.int64)))
            with tf.control_dependencies(ops):
                return tf.constant(True)

        warned_now = tf.cond(bad & tf.logical_not(seen), warn, lambda: tf.constant(False))
        with tf.control_dependencies([warned_now]):
            state = tf.identity(pass_warned | (bad & tf.logical_not(is_end)))
            return state, (is_end, tf.identity(serialized), bad)

    ds = ds.scan(tf.constant(False), warn_once)
    return ds.filter(lambda is_end, _, bad: tf.logical_not(is_end | bad)).map(lambda _, s, b: s)


def checked_records(
    path,
    size,
    num_joints: int,
    *,
    on_bad_record: str = "fail",
    need_normalizer: bool = False,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    warned: tf.lookup.experimental.MutableHashTable | None = None,
    count_bytes: bool = True,
) -> tf.data.Dataset:
    """The usable serialised records of one shard, in order (usable in `interleave`).

    Every record is checked with `features.record_problem` (what a manifest does not vouch for:
    this run's `max_pixels` and `need_normalizer`). With `count_bytes`, the bytes read are
    counted so that a shard TF stops reading early (a corrupted or truncated record: the rest of
    the shard is lost) or with bytes after its last record is noticed at its end; without (the
    split's manifest vouches for every shard's size), a record TF cannot read raises TF's error.

    Args:
        path, size: the shard and its size in bytes (string and int64 scalars).
        num_joints: K.
        on_bad_record: "fail": the first problem raises `InvalidArgumentError` whose message
            names the shard, the record and the problem; "skip": bad records are dropped, with
            one warning on stderr per shard (per pass over it without `warned`).
        need_normalizer, max_pixels: see `features.record_problem`.
        warned: "skip" only: shards already warned about (a `MutableHashTable` string -> int64
            created next to the dataset), so each is named once, not once per epoch.
        count_bytes: see above (`Split.vouched` turns it off).

    Returns:
        Dataset of string scalars.
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record must be one of {', '.join(ON_BAD_RECORD)}")
    path = tf.convert_to_tensor(path, tf.string)
    size = tf.cast(size, tf.int64)
    ds = _numbered(path, size, count_bytes)
    ds = _with_messages(ds, path, size, num_joints, need_normalizer, max_pixels)
    if on_bad_record == "fail":
        return _fail_on_problems(ds)
    return _skip_problems(ds, path, warned)


def _shard_files(split: Split, input_context):
    if input_context is None or input_context.num_input_pipelines <= 1:
        return _files_and_sizes(split), False
    if len(split.files) >= input_context.num_input_pipelines:
        ds = _files_and_sizes(split)
        return ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id), False
    # Fewer files than workers: every worker reads all files and keeps every n-th record.
    return _files_and_sizes(split), True


def _shuffled_records(config: DataConfig, split: Split, seed: int, input_context):
    """The checked records of this input pipeline's shards, shards shuffled every pass, read
    interleaved, forever (before the record shuffle)."""
    warned = None
    if config.on_bad_record == "skip":
        warned = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)

    def read(path, size):
        return checked_records(
            path,
            size,
            config.joint_set.num_joints,
            on_bad_record=config.on_bad_record,
            max_pixels=config.max_pixels,
            warned=warned,
            count_bytes=not split.vouched,
        )

    ds, shard_records = _shard_files(split, input_context)
    ds = ds.shuffle(len(split.files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(
        tf.autograph.experimental.do_not_convert(read),
        cycle_length=min(len(split.files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def open_train_split(config: DataConfig, split: Split | None = None) -> Split:
    """The training split, listed and start-checked (`Split.check_start`, one record per shard).

    Args:
        config: `DataConfig` (`train_files`, the joint set, `max_pixels`, `on_bad_record`).
        split: the split already listed (`Split.open(config.train_files)`); None: list it.

    Raises:
        FileNotFoundError: when no file matches `config.train_files`.
        ValueError: one line naming the shard or manifest (see `make_train_dataset`).
    """
    if config.on_bad_record not in ON_BAD_RECORD:
        raise ValueError(
            f"on_bad_record must be one of {', '.join(ON_BAD_RECORD)}, got {config.on_bad_record!r}"
        )
    split = split or Split.open(config.train_files)
    split.check_start(
        config.joint_set, max_pixels=config.max_pixels, on_bad_record=config.on_bad_record
    )
    return split


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The splits a training run reads, opened and checked once (`open_splits`)."""

    train: Split
    valid: Split
    steps_per_epoch: int


def open_splits(
    config: DataConfig, batch_size: int, steps_per_epoch: int = 0, train: Split | None = None
) -> TrainingData:
    """Opens and checks the training and validation splits before anything is built.

    Reads one record per shard, and the manifests. The validation split is read in full
    (`Split.check`, which names every bad record and a missing PCK normalizer before the first
    epoch) only where no manifest vouches for its shards: a vouched shard holds the records the
    writer checked, and its records are checked again as validation reads them.

    Args:
        config: `DataConfig` (`train_files`, `valid_files`, joints, `max_pixels`, `on_bad_record`).
        batch_size: the global batch size.
        steps_per_epoch: 0: one pass over the training split (`Split.num_records`: the
            manifest's count; shards without one are counted by reading them).
        train: the training split already listed; None: list it.

    Raises:
        FileNotFoundError / ValueError: one line naming the glob, shard, record or manifest
            (validation records of another joint set than `config.joint_set`: naming both).
    """
    train = open_train_split(config, train)
    valid = Split.open(config.valid_files)
    valid_joints = valid.joints()
    if valid_joints is not None:
        check_same_joints(valid_joints, valid.patterns, config.joint_set, "the training run")
    valid.check_start(config.joint_set, need_normalizer=True, max_pixels=config.max_pixels)
    if not valid.vouched:
        report = valid.check(
            config.joint_set.num_joints, need_normalizer=True, max_pixels=config.max_pixels
        )
        validate.raise_for_problems(report)
    steps = steps_per_epoch or max(1, train.num_records // batch_size)
    return TrainingData(train, valid, steps)


def make_train_dataset(
    config: DataConfig,
    codec: HeatmapCodec,
    batch_size: int,
    output_names: list[str],
    seed: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    *,
    antialias: bool = True,
    skip_steps: int = 0,
    split: Split | None = None,
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
        antialias: see the module docstring.
        skip_steps: training steps already taken from this stream (a resumed run): their
            records are skipped before anything is decoded, and the stream goes on where that
            run left it (record for record when tf.data runs deterministically, e.g. under op
            determinism; with "skip", each record dropped after the checks, an image that fails
            to decode, shifts it by one).
        split: the training split as `open_train_split` returns it (listed and checked once per
            run); None: `open_train_split(config)`.

    Returns:
        Dataset of (image [B, S, S, 3], {name: heatmaps [B, H, H, K]}), repeated forever;
        with `config.unlabelled_rule == "ignore"` also {name: joint weights [B, 1, 1, K]}
        (`joint_loss_weights`), Keras's `sample_weight` of every output.

    Raises:
        ValueError: before anything is built, naming the shard: a shard of 0 bytes or whose bytes
            hold no record, a first record that is unusable (`config.on_bad_record="fail"`), or
            no shard starting with a usable one ("skip"); an unknown `on_bad_record`.
        FileNotFoundError: when no file matches `config.train_files`.

    Bad records met later: see the module docstring and `checked_records`.
    """
    split = split or open_train_split(config)
    num_joints = config.joint_set.num_joints
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    skip = config.on_bad_record == "skip"
    ds = _shuffled_records(config, split, seed, input_context)
    ds = ds.shuffle(config.shuffle_buffer, seed=seed)
    # Per-sample stateless seeds make the augmentation reproducible for a given record order.
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))
    if skip_steps:
        # Here, before `prepare`: reading and checking a record costs a fraction of decoding and
        # warping it. A step takes one batch per replica fed by this input pipeline.
        replicas = 1
        if input_context is not None:
            replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        ds = ds.skip(skip_steps * batch_size * replicas)

    weighted = config.unlabelled_rule == "ignore"

    def prepare(serialized, sample_seed):
        record = features.parse_example(serialized, num_joints)
        return make_training_example(
            record, sample_seed, config, codec, antialias=antialias, joint_weights=weighted
        )

    prepare = tf.autograph.experimental.do_not_convert(prepare)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    if skip:
        # An image that passed the header check but does not decode (a truncated JPEG).
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    per_output = tf.autograph.experimental.do_not_convert(lambda *b: _per_output(b, output_names))
    ds = ds.map(per_output, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _per_output(batch, output_names):
    """(image, heatmaps[, weights]) batch -> `fit`'s (x, y[, sample_weight]) per output name.

    The weights [B, K] become [B, 1, 1, K], which Keras broadcasts over the loss's squared
    errors [B, H, W, K] (`training/losses.JointWeightedMSE`).
    """
    image, heatmaps = batch[:2]
    targets = {name: heatmaps for name in output_names}
    if len(batch) == 2:
        return image, targets
    weights = batch[2][:, None, None, :]
    return image, targets, {name: weights for name in output_names}


def make_eval_dataset(
    files: str | list[str] | Split,
    num_joints: int,
    codec: HeatmapCodec,
    batch_size: int,
    *,
    need_normalizer: bool = False,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    antialias: bool = True,
):
    """Unaugmented, ordered batches (image, info) for evaluation; see `make_eval_example`.

    `files`: comma-separated globs, a list of shards, or an opened `Split`. Every record is
    checked (`checked_records`, "fail"): a bad one raises `InvalidArgumentError` naming the
    shard and the record. `need_normalizer`: require a positive `person/normalizer` (PCK
    divides by it).
    """
    split = files if isinstance(files, Split) else Split.open(files)

    @tf.autograph.experimental.do_not_convert
    def records(path, size):
        return checked_records(
            path,
            size,
            num_joints,
            need_normalizer=need_normalizer,
            max_pixels=max_pixels,
            count_bytes=not split.vouched,
        )

    @tf.autograph.experimental.do_not_convert
    def example(serialized):
        record = features.parse_example(serialized, num_joints)
        return make_eval_example(record, codec, antialias=antialias)

    ds = _files_and_sizes(split).flat_map(records)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class BadInput(ValueError):
    """The input pipeline stopped on a record it cannot use; the message is one line naming
    the shard and record where they can be found."""


# The in-graph record checks' message: `tf.debugging.Assert(..., [message])` prints
# "assertion failed: [SHARD: record N: what]".
_ASSERTED = re.compile(r"assertion failed: \[(.+?)\]\s*$", re.MULTILINE)


def input_error(error: tf.errors.OpError, splits: Sequence[Split], config: DataConfig):
    """The `BadInput` for an error the input pipeline raised while training, or None when
    `error` did not come from reading the data (`record_error` with the config's joints and
    `max_pixels`).

    Args:
        error: what `fit` raised.
        splits: the splits being read (training, then validation).
        config: the data config (joints, `max_pixels`).
    """
    return record_error(error, splits, config.joint_set.num_joints, config.max_pixels)


def record_error(
    error: tf.errors.OpError, splits: Sequence[Split], num_joints: int, max_pixels: int
) -> BadInput | None:
    """The `BadInput` for an error a record pipeline raised while training or evaluating, or
    None when `error` did not come from reading the data.

    A record check names its shard and record itself. Other failures (an image that does not
    decode: a truncated JPEG passes every header check) name no record, so the splits are
    read again with every image decoded (`Split.check`) to find the first that fails.

    Args:
        error: what `fit` or an evaluation's loop over the dataset raised.
        splits: the splits being read, in the order they are searched.
        num_joints: K of the records' joint set.
        max_pixels: the image size limit the pipeline applied.
    """
    message = error.message or ""
    asserted = _ASSERTED.search(message)
    if asserted:
        return BadInput(asserted.group(1))
    if "IteratorGetNext" not in message:
        return None
    reason = validate.tf_error_line(error)
    for split in splits:
        report = split.check(
            num_joints, need_normalizer=False, max_pixels=max_pixels, decode_images=True
        )
        if report.problems:
            return BadInput(str(report.problems[0]))
    names = ", ".join(split.patterns for split in splits)
    return BadInput(f"{names}: the input pipeline stopped: {reason}")
