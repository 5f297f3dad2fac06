"""The private Keras hooks the trainer and the optimizer rely on, checked at their import.

Keras keeps these out of its public API, so a Keras release may rename or drop any of them.
Without the check a missing method would surface as an AttributeError deep in a train step, or
not at all: `TorchRMSprop` overrides `_all_reduce_sum_gradients` and `_backend_update_step`, and
an override that Keras no longer calls is silently dead. setup.py pins the Keras releases these
were tested with (`TESTED_KERAS`); `check` names the first hook that the installed Keras lacks.
"""

from __future__ import annotations

import inspect

import keras

TESTED_KERAS = "keras>=3.15,<3.16"


def _methods() -> tuple[tuple[str, str, str], ...]:
    """(where it is used, public name of a Keras class, private method the class must have)."""
    return (
        ("trainer._peek_local_batch", "Model", "_maybe_symbolic_build"),
        ("TorchRMSprop", "optimizers.RMSprop", "_all_reduce_sum_gradients"),
        ("TorchRMSprop", "optimizers.RMSprop", "_backend_update_step"),
        ("TorchRMSprop", "optimizers.RMSprop", "_get_variable_index"),
    )


def _attributes() -> tuple[tuple[str, str, str, str], ...]:
    """(where it is used, Keras class, its method, private attribute that method sets)."""
    return (
        ("trainer._build_training_state", "Model", "compile", "_compile_loss"),
        ("trainer._build_training_state", "Model", "compile", "_compile_metrics"),
        ("TorchRMSprop", "optimizers.RMSprop", "build", "_velocities"),
    )


def check() -> None:
    """Raises ImportError naming the first private hook the installed Keras lacks.

    Methods are looked up on the class; attributes that only exist on an instance (set by
    `compile` or `build`) are looked for among the names their setting method's code assigns.
    """
    for user, cls, name in _methods():
        if not callable(getattr(_keras_class(cls), name, None)):
            _missing(f"keras.{cls}.{name}", user)
    for user, cls, method, name in _attributes():
        code = inspect.unwrap(getattr(_keras_class(cls), method)).__code__
        if name not in code.co_names:
            _missing(f"keras.{cls}.{name} (set by {method})", user)


def _keras_class(name: str) -> type:
    """`keras.optimizers.RMSprop` for "optimizers.RMSprop"."""
    obj = keras
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _missing(hook: str, user: str) -> None:
    raise ImportError(
        f"Keras {keras.__version__} lacks {hook}, a private hook {user} uses; "
        f"install a tested Keras: pip install '{TESTED_KERAS}'"
    )
