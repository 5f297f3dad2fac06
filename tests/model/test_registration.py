"""`import stacked_hourglass` registers the Keras classes: `.keras` files load in a new process."""

import os
import subprocess
import sys

import keras
import pytest

from stacked_hourglass import model as model_lib
from stacked_hourglass.model.layers import BiasAddConv2D, NearestUpsampling2D


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A tiny StackedHourglass's `.keras` file, and one of a model of two custom layers."""
    folder = tmp_path_factory.mktemp("registration")
    model_lib.build_model(num_stacks=1, num_features=8, depth=1, num_joints=3, input_size=32).save(
        folder / "net.keras"
    )
    inputs = keras.Input((4, 4, 3))
    up = NearestUpsampling2D(2, name="up")(BiasAddConv2D(2, 1, name="conv")(inputs))
    keras.Model(inputs, up).save(folder / "layers.keras")
    return folder


# Keras first (and, before the package, Keras cannot locate the class: the check is not
# vacuous), the package first (the classes register when Keras is imported), and TensorFlow
# first, which imports Keras from inside its own import.
@pytest.mark.parametrize(
    "imports",
    [
        "keras\n"
        "try:\n"
        "    keras.saving.load_model({net!r})\n"
        "except TypeError as e:\n"
        "    assert \"Could not locate class 'StackedHourglass'\" in str(e), e\n"
        "else:\n"
        "    raise AssertionError('loaded without the package')\n"
        "import stacked_hourglass",
        "stacked_hourglass, keras",
        "stacked_hourglass, tensorflow, keras",
    ],
    ids=["keras_first", "package_first", "tensorflow_first"],
)
def test_load_model_after_import_stacked_hourglass(keras_files, imports):
    net = str(keras_files / "net.keras")
    code = (
        "import " + imports.format(net=net) + "\n"
        f"net = keras.saving.load_model({net!r})\n"
        "assert type(net).__name__ == 'StackedHourglass', type(net)\n"
        f"layers = keras.saving.load_model({str(keras_files / 'layers.keras')!r})\n"
        "assert type(layers.get_layer('up')).__name__ == 'NearestUpsampling2D'\n"
        "assert type(layers.get_layer('conv')).__name__ == 'BiasAddConv2D'\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
