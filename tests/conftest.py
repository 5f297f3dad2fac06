"""Shared fixtures: small synthetic TFRecord splits written to a temporary folder."""

import pytest

from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import synthetic


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
