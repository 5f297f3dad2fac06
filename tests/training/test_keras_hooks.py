"""The check of the private Keras hooks the trainer and the optimizer use."""

import pathlib

import keras
import pytest

from stacked_hourglass.training import keras_hooks


def test_installed_keras_has_every_hook():
    keras_hooks.check()


def _owners(cls: type, name: str) -> list[type]:
    """The classes of `cls`'s MRO that define `name` (a backend's class and its base may)."""
    return [c for c in cls.__mro__ if name in vars(c)]


@pytest.mark.parametrize(
    "cls, name",
    [
        (keras.Model, "_maybe_symbolic_build"),
        (keras.optimizers.RMSprop, "_all_reduce_sum_gradients"),
        (keras.optimizers.RMSprop, "_backend_update_step"),
        (keras.optimizers.RMSprop, "_get_variable_index"),
    ],
)
def test_a_missing_method_fails_with_one_line_naming_it(monkeypatch, cls, name):
    for owner in _owners(cls, name):
        monkeypatch.delattr(owner, name)
    with pytest.raises(ImportError) as info:
        keras_hooks.check()
    message = str(info.value)
    assert "\n" not in message
    assert f"Keras {keras.__version__} lacks " in message
    assert f".{cls.__name__}.{name}, a private hook " in message
    assert message.endswith(f"pip install '{keras_hooks.TESTED_KERAS}'")


def test_a_missing_instance_attribute_fails_naming_it(monkeypatch):
    """`_velocities` exists only once `build` ran: its absence shows in what `build` sets."""

    def build(self, var_list):
        self._moments = []

    monkeypatch.setattr(keras.optimizers.RMSprop, "build", build)
    with pytest.raises(ImportError, match=r"lacks keras\.optimizers\.RMSprop\._velocities \(set "
                       r"by build\), a private hook TorchRMSprop uses"):  # fmt: skip
        keras_hooks.check()


def test_a_missing_compile_attribute_fails_naming_it(monkeypatch):
    compile_ = keras.Model.compile

    def compile(self, *args, **kwargs):  # what a Keras that renamed _compile_loss would do
        return compile_(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", compile)
    with pytest.raises(ImportError, match=r"lacks keras\.Model\._compile_loss \(set by compile\)"):
        keras_hooks.check()


def test_setup_pins_the_tested_range():
    setup = pathlib.Path(__file__).parents[2] / "setup.py"
    assert f'"{keras_hooks.TESTED_KERAS}",' in setup.read_text(encoding="utf-8")
    assert keras.__version__.startswith("3.15.")
