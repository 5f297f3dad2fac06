"""Registers the package's Keras classes with Keras as soon as both are imported.

`keras.saving.load_model("MODEL_DIR/model.keras")` finds `StackedHourglass` and the custom
layers (`model/layers.py`) only once the modules defining them ran their
`@keras.saving.register_keras_serializable` decorators: Keras imports the module named in a
`.keras` file only for its own packages (keras, keras_hub, ...). keras-hub registers its classes
by importing them in its package `__init__`; this package cannot import Keras there, because
released-prediction scoring and the weight reader run without TensorFlow or Keras (their
import-linter contracts and `tests/evaluation/test_released.py`). So `import stacked_hourglass`
registers the classes at once where Keras is already imported, and otherwise the moment Keras
is: a finder on `sys.meta_path` runs the registration right after the `keras` package itself
finishes importing, and removes itself then.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

# Importing this package (`model/__init__.py`) imports `model/hourglass.py` and `model/layers.py`,
# whose decorators register every class of the network. `run_dir.save_final_model` writes the
# network without the trainer's compile state; a .keras file saved from a compiled model names
# the trainer's optimizer and metric (training/), which `run_dir.load_model` and
# `keras.saving.load_model(path, compile=False)` skip, as inference needs.
MODEL_PACKAGE = "stacked_hourglass.model"


def register_keras_objects() -> None:
    """Registers the Keras classes now if Keras is imported, else as soon as it is."""
    if "keras" in sys.modules:
        importlib.import_module(MODEL_PACKAGE)
    elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds `keras` through the other finders and wraps its loader to register afterwards.

    TensorFlow looks `keras` up (`importlib.util.find_spec`) before importing it, so the finder
    stays until the package is actually executed, not merely found.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader, self)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    """Keras's own loader, then the package's registration once `keras` is complete."""

    def __init__(self, loader: importlib.abc.Loader, finder: _AfterKerasImport):
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        importlib.import_module(MODEL_PACKAGE)

    def __getattr__(self, name):
        # get_resource_reader, is_package, get_code, ...: Keras's loader answers.
        return getattr(self._loader, name)
