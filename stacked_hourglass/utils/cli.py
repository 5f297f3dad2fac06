"""The one way every command line of the package parses flags and reports errors.

Each entry point (`python -m stacked_hourglass.NAME`) is

    def define_flags(fv): ...                     # flags into a fresh absl FlagValues
    def run(fv) -> int | None: ...                # calls one library function
    def main(argv=None): return cli.main("NAME", define_flags, run, argv, __doc__)

Flags are declared when the command runs, not at import, so modules can be imported together
(and tests can call `main([...])` in-process). `--flagfile=FILE` works as with `absl.app`.
Errors the user can fix (bad flags, missing or malformed files) become one line on stderr,
`NAME: error: ...`, and exit status 1: no traceback, no screen of usage text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import flags

from stacked_hourglass.utils.errors import one_line

# What a user can fix: a bad value, a missing or unreadable file. Anything else is a bug and
# keeps its traceback.


class UsageError(ValueError):
    """A command-line mistake (missing required flag, conflicting flags)."""


class CommandFailed(RuntimeError):
    """A step the command ran failed and has said why (e.g. a subprocess of the demo)."""


# (OSError covers missing files, folders that are files, permissions and full disks.)
USER_ERRORS = (ValueError, KeyError, OSError, CommandFailed)


def error(prog: str, message: str) -> int:
    """Prints `prog: error: message` on stderr; returns the exit status 1."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 1


def parse(
    define_flags: Callable[[flags.FlagValues], None], argv: Sequence[str], prog: str, doc: str = ""
) -> flags.FlagValues | None:
    """Declares and parses the flags; None after printing --help. Raises `UsageError`."""
    fv = flags.FlagValues()
    define_flags(fv)
    args = list(argv)
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in args[1:]):
        print((doc or "").strip() + "\n\nflags:\n" + fv.get_help(include_special_flags=False))
        return None
    try:
        rest = fv(args)
    except flags.Error as e:
        raise UsageError(one_line(e)) from None
    if len(rest) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(rest[1:])}")
    return fv


def main(
    prog: str,
    define_flags: Callable[[flags.FlagValues], None],
    run: Callable[[flags.FlagValues], int | None],
    argv: Sequence[str] | None = None,
    doc: str = "",
) -> int:
    """Parses flags, calls `run`, and turns user errors into one line; returns the exit status."""
    argv = list(sys.argv if argv is None else [prog, *argv])
    try:
        fv = parse(define_flags, argv, prog, doc)
        if fv is None:
            return 0
        return int(run(fv) or 0)
    except USER_ERRORS as e:
        return error(prog, one_line(e))
    except KeyboardInterrupt:
        return error(prog, "interrupted")


def require(fv: flags.FlagValues, *names: str) -> None:
    """`UsageError` naming the first of `names` that was not given."""
    for name in names:
        if fv[name].value in (None, "", []):
            raise UsageError(f"--{name} is required")
