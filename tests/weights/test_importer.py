"""Importing reference checkpoints as model directories (weights.importer).

The fixtures (`shared/data/reference-weights`) were written by the reference implementations'
own code, with the heatmaps PyTorch computed; other sizes are checked by writing one of our
models in a reference layout (`export_reference_state` + `save_checkpoint`) and importing it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from stacked_hourglass.weights import importer
from stacked_hourglass.weights.torch_pickle import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
)
from stacked_hourglass.weights.torch_pickle_writer import save_checkpoint

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "reference-weights"
FIXTURES = {"princeton": "princeton_2hg_f64.pt", "bearpaw": "bearpaw_hg_s2_b1.pth.tar"}
FIXTURE_SHA256 = {
    "princeton": "2a4e30266f26fe37ddd913a71bcd510c0f2bd005c4159fa42143e1bb5c6d0c96",
    "bearpaw": "35f290caaf5041649aabcdc14c5320a7fd1c249056d0c928f6f904a363d12537",
}
FIXTURE_UNUSED = {"princeton": 58, "bearpaw": 0}
# Any mean will do for the fixtures (their stored input is what the network saw); this one is
# written to a mean file as bearpaw's datasets save it, so that reading one is tested too.
TEST_MEAN = (0.45, 0.41, 0.37)
TOLERANCE = 1e-4
WRAPPER = {"princeton": "model.module.", "bearpaw": "module."}


def reference_checkpoint(fmt: str) -> Path:
    path = REFERENCE / FIXTURES[fmt]
    if not path.is_file() or not Path(f"{path}.io.npz").is_file():
        pytest.skip(
            f"reference checkpoint {path} (and .io.npz) absent: shared/data/reference-weights"
        )
    return path


def write_mean_file(path: Path, mean=TEST_MEAN) -> Path:
    std = np.full(3, 0.25, np.float32)
    save_checkpoint(path, {"mean": np.asarray(mean, np.float32), "std": std}, format="legacy")
    return path


@pytest.fixture(scope="module", params=["princeton", "bearpaw"])
def imported(request, tmp_path_factory):
    fmt = request.param
    path = reference_checkpoint(fmt)
    root = tmp_path_factory.mktemp(f"import_{fmt}")
    mean = str(write_mean_file(root / "mean.pth.tar")) if fmt == "bearpaw" else None
    result = importer.import_checkpoint("auto", path, root / "run", input_mean=mean)
    return fmt, path, result


def test_fixture_heatmaps_match_the_reference(imported):
    fmt, path, result = imported
    assert result.format == fmt
    diffs = importer.verify(result.model, f"{path}.io.npz", fmt)
    print(f"{fmt}: max |diff| per stack {diffs}")
    assert list(diffs) == [1, 2]
    assert max(diffs.values()) <= TOLERANCE


def test_model_directory_is_complete(imported):
    from stacked_hourglass import run_dir

    fmt, path, result = imported
    names = sorted(os.listdir(result.model_dir))
    assert names == ["config.json", importer.IMPORT_FILE, "model.keras"]
    leftovers = [n for n in os.listdir(Path(result.model_dir).parent) if n.endswith(".tmp")]
    assert leftovers == []
    config = run_dir.load_config(result.model_dir)
    assert config == result.config
    assert config.data.dataset == "mpii"
    model = config.resolve().model
    assert model.num_joints == 16 and model.num_stacks == 2 and model.stem_padding == "symmetric"
    assert model.num_features == (64 if fmt == "princeton" else 256)
    assert model.input_mean == pytest.approx(TEST_MEAN if fmt == "bearpaw" else (0, 0, 0))
    provenance = json.loads(Path(result.model_dir, importer.IMPORT_FILE).read_text())
    assert provenance["source_format"] == fmt
    assert provenance["checkpoint_sha256"] == FIXTURE_SHA256[fmt]
    assert provenance["checkpoint"] == os.path.abspath(path)
    assert len(provenance["unused_keys"]) == FIXTURE_UNUSED[fmt] == len(result.unused)
    assert provenance["architecture"]["num_stacks"] == 2
    assert provenance["package_version"] and provenance["seconds"] > 0
    if fmt == "bearpaw":
        assert provenance["input_mean_source"].startswith("mean file ")
        np.testing.assert_allclose(provenance["input_mean"], TEST_MEAN, rtol=1e-6)


def test_saved_model_directory_reproduces_the_reference(imported):
    from stacked_hourglass import run_dir

    fmt, path, result = imported
    model = run_dir.load_model(result.model_dir)
    diffs = importer.verify(model, f"{path}.io.npz", fmt)
    assert max(diffs.values()) <= TOLERANCE


def test_export_reference_state_inverts_the_import(imported):
    fmt, path, result = imported
    state = extract_state_dict(load_checkpoint(path), path)
    exported = importer.export_reference_state(result.model, fmt)
    counters = {k for k in exported if k.endswith(".num_batches_tracked")}
    assert set(exported) - counters == set(state)
    unused = set(result.unused)
    for key, value in state.items():
        if key not in unused:
            np.testing.assert_array_equal(exported[key], value, err_msg=key)
        else:
            assert exported[key].shape == value.shape


# A full-size export each (256 px, depth 4): run by .ci/run with -m large; bearpaw's carries
# the input mean into the SavedModel. Tiny models' exports are compared with Keras in the
# default run (tests/serving/test_exporter.py).
@pytest.mark.large
@pytest.mark.parametrize("imported", ["bearpaw", "princeton"], indirect=True)
def test_exported_saved_model_serves_the_same_heatmaps(imported, tmp_path):
    import tensorflow as tf

    from stacked_hourglass import joints
    from stacked_hourglass.serving import exporter
    from stacked_hourglass.serving.layout import SERVING_IMAGE_TENSOR

    fmt, path, result = imported
    version = exporter.export_model(
        result.model, joints.get_joint_set("mpii"), 256, str(tmp_path / "export")
    )
    with np.load(f"{path}.io.npz") as io:
        network_input, reference = io["input"], io["heatmaps_2"].transpose(0, 2, 3, 1)
    if fmt == "bearpaw":
        network_input = network_input.transpose(0, 2, 3, 1)
    images = network_input + np.asarray(result.input_mean, np.float32)  # the mean is inside
    keras_heatmaps = np.asarray(result.model(images, training=False)["heatmaps_2"])
    serve = tf.saved_model.load(version).signatures[SERVING_IMAGE_TENSOR]
    served = serve(images=tf.constant(images))["heatmaps"].numpy()
    print(f"{fmt} SavedModel: vs Keras {np.max(np.abs(served - keras_heatmaps)):.3g}, ", end="")
    print(f"vs reference {np.max(np.abs(served - reference)):.3g}")
    assert np.max(np.abs(served - keras_heatmaps)) <= TOLERANCE
    assert np.max(np.abs(served - reference)) <= TOLERANCE


# --- other sizes: one of our models written in a reference layout, imported back ------------


def randomized_model(seed: int = 0, **fields):
    """A StackedHourglass with random weights and BatchNorm statistics."""
    import keras

    from stacked_hourglass.model import ModelConfig, build_model

    keras.utils.set_random_seed(seed)
    model = build_model(ModelConfig(**fields))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c).astype(np.float32),
                    rng.normal(0, 0.1, c).astype(np.float32),
                    rng.normal(0, 0.1, c).astype(np.float32),
                    rng.uniform(0.5, 2.0, c).astype(np.float32),
                ]
            )
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return model


def write_reference_checkpoint(model, fmt: str, path: Path, format: str = "zip") -> Path:
    """The model as the reference training script saves it (wrapper prefix, extra entries)."""
    state = importer.export_reference_state(model, fmt)
    wrapped = {WRAPPER[fmt] + key: value for key, value in state.items()}
    save_checkpoint(path, {"epoch": 3, "state_dict": wrapped, "optimizer": {}}, format=format)
    return path


def max_diffs(a, b, image) -> dict:
    out_a, out_b = a(image, training=False), b(image, training=False)
    return {k: float(np.max(np.abs(np.asarray(out_a[k]) - np.asarray(out_b[k])))) for k in out_a}


# (format, model fields, dataset, file format); ~10 s each at depth 4: the first and the last
# run by .ci/run (-m large), the second (depth 3, the legacy file format) in the default run.
SIZES = [
    pytest.param(
        "princeton",
        dict(num_stacks=3, num_features=32, num_joints=16),
        "mpii",
        "zip",
        marks=pytest.mark.large,
    ),
    ("princeton", dict(num_stacks=2, num_features=32, num_joints=11, depth=3), "flic", "legacy"),
    pytest.param(
        "bearpaw",
        dict(num_stacks=2, num_features=32, num_joints=11, num_modules=2),
        "flic",
        "zip",
        marks=pytest.mark.large,
    ),
]


@pytest.mark.parametrize("fmt, fields, dataset, file_format", SIZES)
def test_other_sizes_round_trip(tmp_path, fmt, fields, dataset, file_format):
    from stacked_hourglass import run_dir

    stem = (64, 128, 128) if fmt == "princeton" else (64, 128, 256)
    mean = (0.5, 0.4, 0.3) if fmt == "bearpaw" else (0.0, 0.0, 0.0)
    original = randomized_model(input_size=64, stem_features=stem, input_mean=mean, **fields)
    path = write_reference_checkpoint(original, fmt, tmp_path / "ckpt.pth", file_format)
    result = importer.import_checkpoint(
        fmt,
        path,
        tmp_path / "run",
        dataset=dataset,
        input_mean=mean if fmt == "bearpaw" else None,
        input_size=64,
    )
    expected = {"depth": 4, "num_modules": 1, **fields, "stem_features": stem}
    assert result.architecture == expected
    image = np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    diffs = max_diffs(original, result.model, image)
    assert len(diffs) == fields["num_stacks"] and max(diffs.values()) <= 1e-5
    config = run_dir.load_config(result.model_dir)
    assert config.data.dataset == dataset
    assert config.resolve().model == result.config.model  # joints follow from the dataset
    reloaded = run_dir.load_model(result.model_dir)
    assert max(max_diffs(original, reloaded, image).values()) <= 1e-5


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """Small reference checkpoints of each format (1 stack, depth 1) and 11-joint princeton."""
    root = tmp_path_factory.mktemp("tiny")
    small = dict(num_stacks=1, num_features=16, depth=1, input_size=64)
    out = {}
    for name, fmt, fields in [
        ("princeton", "princeton", dict(num_joints=16)),
        ("princeton11", "princeton", dict(num_joints=11)),
        ("bearpaw", "bearpaw", dict(num_joints=16, stem_features=(64, 128, 256))),
    ]:
        model = randomized_model(**small, **fields)
        out[name] = write_reference_checkpoint(model, fmt, root / f"{name}.pth.tar")
    return out


def assert_nothing_written(parent: Path):
    assert sorted(os.listdir(parent)) == [], "an import that failed left files behind"


def test_tensor_of_another_architecture_is_named(tiny_checkpoints, tmp_path):
    state = extract_state_dict(load_checkpoint(tiny_checkpoints["princeton"]))
    state["hgs.0.0.low1.conv2.conv.weight"] = np.zeros((8, 8, 5, 5), np.float32)
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"state_dict": state})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CheckpointError) as error:
        importer.import_checkpoint("princeton", path, out / "run", input_size=64)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "hgs.0.0.low1.conv2.conv.weight has shape (8, 8, 5, 5), expected (8, 8, 3, 3)" in message
    assert_nothing_written(out)


def test_extra_tensor_is_named(tiny_checkpoints, tmp_path):
    state = extract_state_dict(load_checkpoint(tiny_checkpoints["bearpaw"]))
    state["classifier.weight"] = np.zeros((10, 256), np.float32)
    path = tmp_path / "extra.pth.tar"
    save_checkpoint(path, {"state_dict": state})
    with pytest.raises(CheckpointError, match=r"tensor classifier\.weight of shape \(10, 256\)"):
        importer.import_checkpoint("auto", path, tmp_path / "run", input_mean=TEST_MEAN)


def test_joint_count_must_match_the_dataset(tiny_checkpoints, tmp_path):
    with pytest.raises(ValueError) as error:
        importer.import_checkpoint(
            "princeton", tiny_checkpoints["princeton11"], tmp_path / "run", input_size=64
        )
    assert str(error.value) == (
        "checkpoint predicts 11 heatmaps but --dataset=mpii has 16 joints; pass --dataset=flic"
    )
    assert not (tmp_path / "run").exists()


def test_explicit_format_must_match(tiny_checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="a princeton checkpoint, not bearpaw"):
        importer.import_checkpoint(
            "bearpaw", tiny_checkpoints["princeton"], tmp_path / "run", input_mean=TEST_MEAN
        )


def test_bearpaw_needs_an_input_mean(tiny_checkpoints, tmp_path):
    for fmt in ("bearpaw", "auto"):
        with pytest.raises(ValueError, match=r"--input_mean=PATH/mean\.pth\.tar"):
            importer.import_checkpoint(fmt, tiny_checkpoints["bearpaw"], tmp_path / "run")
    result = importer.import_checkpoint(
        "auto", tiny_checkpoints["bearpaw"], tmp_path / "run", input_mean=[0, 0, 0], input_size=64
    )
    assert result.input_mean == (0.0, 0.0, 0.0)


def test_existing_directory_is_never_overwritten(tiny_checkpoints, tmp_path):
    run = tmp_path / "run"
    run.mkdir()  # empty: fine
    importer.import_checkpoint("auto", tiny_checkpoints["princeton"], run, input_size=64)
    before = {name: (run / name).stat().st_mtime_ns for name in os.listdir(run)}
    with pytest.raises(FileExistsError, match="not an empty directory"):
        importer.import_checkpoint("auto", tiny_checkpoints["princeton"], run, input_size=64)
    assert {name: (run / name).stat().st_mtime_ns for name in os.listdir(run)} == before


def test_mean_files(tmp_path):
    assert importer.read_mean_file(write_mean_file(tmp_path / "mean.pth.tar")) == pytest.approx(
        TEST_MEAN
    )
    save_checkpoint(tmp_path / "bad.pth.tar", {"std": np.ones(3, np.float32)})
    with pytest.raises(CheckpointError, match="not a mean file"):
        importer.read_mean_file(tmp_path / "bad.pth.tar")
    with pytest.raises(ValueError, match="3 finite numbers"):
        importer.resolve_input_mean("princeton", [0.1, 0.2])
    assert importer.resolve_input_mean("princeton", None)[0] == (0.0, 0.0, 0.0)


def test_princeton_layout_has_one_residual_per_place():
    model = randomized_model(num_stacks=1, num_features=16, depth=1, input_size=64, num_modules=2)
    with pytest.raises(ValueError, match="one residual per place"):
        importer.export_reference_state(model, "princeton")
    state = importer.export_reference_state(model, "bearpaw")
    assert "hg.0.hg.0.0.1.conv1.weight" in state  # the second module of up1


@pytest.mark.large
def test_eight_stack_checkpoint_round_trip(tmp_path):
    """Import time of a paper-sized (8 stacks, 256 features) checkpoint, for the record."""
    original = randomized_model(num_stacks=8)
    path = write_reference_checkpoint(original, "princeton", tmp_path / "hg8.pt")
    start = time.perf_counter()
    result = importer.import_checkpoint("auto", path, tmp_path / "run")
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    print(f"8-stack import: {seconds:.1f} s for {size / 1e6:.1f} MB; phases {result.timings}")
    assert result.architecture["num_stacks"] == 8 and len(result.unused) == 226
    image = np.random.default_rng(0).uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
    assert max(max_diffs(original, result.model, image).values()) <= 1e-5


def test_model_dir_url_is_written_through_the_storage_facade(tiny_checkpoints):
    """A URL --model_dir (here TensorFlow's in-memory file system) gets the three files."""
    from stacked_hourglass import run_dir
    from stacked_hourglass.utils import files

    url = "ram://importer_test/run"
    result = importer.import_checkpoint("auto", tiny_checkpoints["princeton"], url, input_size=64)
    assert result.model_dir == url and result.config.train.model_dir == url
    assert sorted(files.listdir(url)) == ["config.json", importer.IMPORT_FILE, "model.keras"]
    assert [n for n in files.listdir("ram://importer_test") if n.endswith(".tmp")] == []
    config = files.read_json(run_dir.path(url, run_dir.CONFIG_FILE))
    assert config["model"]["input_size"] == 64 and config["train"]["model_dir"] == url
    provenance = files.read_json(run_dir.path(url, importer.IMPORT_FILE))
    assert provenance["source_format"] == "princeton" and provenance["input_size"] == 64
    with pytest.raises(FileExistsError, match="not an empty directory"):
        importer.import_checkpoint("auto", tiny_checkpoints["princeton"], url, input_size=64)
