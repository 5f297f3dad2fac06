"""Errors to one line: what a user reads when a command fails.

TensorFlow's errors carry pages of context, and eager ones wrap the useful words in
`{{function_node ...device:CPU:0}} ... [Op:Name]`; a `KeyError`'s `str()` adds quotes; a message
we compose may hold a file's text with newlines. `one_line` is the single place that turns any of
them into the line a command prints, a manifest records, or an error message embeds.
"""

from __future__ import annotations

import re

_TF_FUNCTION_PREFIX = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_TF_OP_SUFFIX = re.compile(r"\s*\[Op:\w+\].*$")


def one_line(error: BaseException | str, limit: int = 1000) -> str:
    """The message of `error` as one line of at most `limit` characters.

    Args:
        error: an exception (its first non-empty line is kept, without TensorFlow's op and
            device decoration) or a text (all of it is kept, whitespace runs collapsed).
        limit: longer results end in "...".

    Returns:
        The line; the exception's type name when its message is empty.
    """
    text = error
    if isinstance(error, BaseException):
        if isinstance(error, KeyError) and error.args:
            text = str(error.args[0])
        else:
            text = getattr(error, "message", None) or str(error)
        lines = [line.strip() for line in str(text).splitlines() if line.strip()]
        line = lines[0] if lines else ""
        line = _TF_OP_SUFFIX.sub("", _TF_FUNCTION_PREFIX.sub("", line))
        text = line or type(error).__name__
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
