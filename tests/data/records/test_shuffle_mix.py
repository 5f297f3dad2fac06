"""How well the written order mixes a dataset sorted by movie (FLIC's training set): the number of
distinct movies in each window of 32 consecutive records, which is what one batch sees when the
training reader interleaves shards, compared with a uniform random permutation's expectation."""

import collections
import math
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import source_items

DATA = pathlib.Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
FLIC_MAT = DATA / "joint-cnn-mrf" / "data_FLIC.mat"
BATCH = 32


def expected_distinct(group_sizes, window: int) -> float:
    """E[distinct groups among `window` items] for a uniform random order of the items:
    sum over groups of P(the group appears) = 1 − C(N − n, w) / C(N, w)."""
    total = sum(group_sizes)
    return sum(1 - math.comb(total - n, window) / math.comb(total, window) for n in group_sizes)


def mean_distinct(groups, window: int = BATCH) -> float:
    """Mean number of distinct values over all windows of `window` consecutive values."""
    return float(
        np.mean([len(set(groups[s : s + window])) for s in range(len(groups) - window + 1)])
    )


def _source_indices(files, interleave: bool) -> list[int]:
    """source/index of the records, read in file order or as the training reader interleaves
    the shards (one record from each of up to 8 files in turn, before its shuffle buffer)."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    if interleave:
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1)
    else:
        ds = tf.data.TFRecordDataset(files)
    spec = {features.SOURCE_INDEX: tf.io.FixedLenFeature([], tf.int64)}
    ds = ds.map(lambda r: tf.io.parse_single_example(r, spec)[features.SOURCE_INDEX])
    return [int(i) for i in ds.as_numpy_iterator()]


def _mix(items, group_of: dict[int, str], tmp_path, order, dataset="flic") -> dict[str, float]:
    """Mean distinct groups per window of the written records, in file and interleaved order."""
    result = shards.write_split(
        items, len(items), tmp_path / order, "train", dataset, order=order, num_workers=4,
        show_progress=False,
    )  # fmt: skip
    assert result.num_records == len(items)
    files = [str(p) for p in result.shard_paths]
    return {
        how: mean_distinct([group_of[i] for i in _source_indices(files, how == "interleaved")])
        for how in ("records", "interleaved")
    }


def test_expected_distinct_formula():
    assert expected_distinct([5], 3) == 1.0
    assert expected_distinct([1] * 10, 4) == pytest.approx(4.0)
    # Two groups of 2, windows of 2: P(both from one group) = 2 / 6.
    assert expected_distinct([2, 2], 2) == pytest.approx(2 - 2 / 6)


# About 20 s (the whole FLIC training set through the pipeline's shuffle): run by .ci/run.
@pytest.mark.large
def test_flic_training_set_is_mixed_like_a_uniform_permutation(tmp_path, capsys):
    if not FLIC_MAT.is_file():
        pytest.skip(f"real data file {FLIC_MAT} is absent (see shared/data/SOURCES.md)")
    from stacked_hourglass.data.sources import flic

    items = flic.read_examples_mat(FLIC_MAT, tmp_path / "images", "train")
    movies = [item.example.filename.rsplit("-", 1)[0] for item in items]  # MOVIE-FRAME.jpg
    sizes = collections.Counter(movies)
    runs = 1 + sum(a != b for a, b in zip(movies, movies[1:], strict=False))
    assert (len(items), len(sizes), runs) == (3987, 30, 30)  # sorted by movie
    # One small JPEG of FLIC's frame size, hard-linked under every image name.
    (tmp_path / "images").mkdir()
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(tf.io.encode_jpeg(tf.fill([480, 720, 3], tf.constant(70, tf.uint8))).numpy())
    for name in sorted(set(item.example.filename for item in items)):
        os.link(frame, tmp_path / "images" / name)
    assert all(isinstance(item, source_items.PendingExample) for item in items)

    uniform = expected_distinct(sizes.values(), BATCH)  # 15.43 movies of the 30
    movie_of = {item.example.index: movie for item, movie in zip(items, movies, strict=True)}
    source = _mix(items, movie_of, tmp_path, shards.SOURCE_ORDER)
    shuffled = _mix(items, movie_of, tmp_path, shards.SHUFFLED_ORDER)
    with capsys.disabled():
        print(f"\nFLIC train, distinct movies per {BATCH} consecutive records: uniform "
              f"permutation {uniform:.2f}; source order {source['records']:.2f} "
              f"({source['interleaved']:.2f} interleaved); shuffled {shuffled['records']:.2f} "
              f"({shuffled['interleaved']:.2f} interleaved)")  # fmt: skip
    assert source["records"] < 2  # 1.23: one or two movies per batch
    assert source["interleaved"] < 6  # ~4.6: one run of frames per interleaved shard
    for value in shuffled.values():
        assert abs(value - uniform) < 0.05 * uniform


def test_movie_sorted_items_are_mixed_without_shared_data(tmp_path, person_example):
    # 640 people in 20 runs ("movies") of 8 to 56 consecutive frames, as FLIC is sorted.
    sizes = [8 + 16 * (m % 4) for m in range(20)]
    movies = [f"movie{m}" for m, size in enumerate(sizes) for _ in range(size)]
    movie_of = dict(enumerate(movies))
    examples = [person_example(i % 8, index=i) for i in range(len(movies))]
    uniform = expected_distinct(sizes, BATCH)
    source = _mix(examples, movie_of, tmp_path, shards.SOURCE_ORDER, "synthetic")
    shuffled = _mix(examples, movie_of, tmp_path, shards.SHUFFLED_ORDER, "synthetic")
    assert source["records"] < 2.5
    for value in shuffled.values():
        assert abs(value - uniform) < 0.05 * uniform, (value, uniform)
