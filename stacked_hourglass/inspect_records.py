r"""Looks inside converted TFRecords: counts, joint-status counts and a few drawn records.

  python -m stacked_hourglass.inspect_records tfrecords/mpii/valid-*.tfrecord \
      [--output_dir=DIR] [--num_images=N] [--nodecode_images]

Files are positional arguments: paths or globs (quote a glob to let this command expand it).
Prints the number of records per shard and per dataset, per joint how many records have it
visible / occluded / not annotated, and every problem of the records, an image that does not
decode included (each image is decoded to its end, a few ms each; --nodecode_images reads
headers only). With `--output_dir`, draws the first `--num_images` records (image, skeleton,
joints coloured by status, crop box, head box) to PNG files. The work is done by
`stacked_hourglass.data.records.inspect_lib`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from stacked_hourglass.data.records import inspect_lib as inspect
from stacked_hourglass.utils import cli

# Flags that take a value, so that `--output_dir DIR` (value in the next argument) is not read
# as a file.
_VALUE_FLAGS = {"files", "output_dir", "num_images", "flagfile"}


def define_flags(fv: flags.FlagValues) -> None:
    """Declares the flags into `fv`."""
    flags.DEFINE_multi_string(
        "files", [], "TFRecord files or globs (positional arguments are added here).",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string("output_dir", None, "Where to draw records as PNG files.", flag_values=fv)
    flags.DEFINE_integer(
        "num_images", 8, "How many records to draw.", lower_bound=0, flag_values=fv
    )
    flags.DEFINE_boolean(
        "decode_images", True, "Decode every image to its end (else: headers only).",
        flag_values=fv,
    )  # fmt: skip


def run(fv: flags.FlagValues) -> int:
    """Prints the summary of the files; draws records when --output_dir is given."""
    files = inspect.expand_files(fv.files)
    summary = inspect.summarize(files, decode_images=fv.decode_images)
    print(inspect.format_summary(summary))
    if fv.output_dir:
        written = inspect.draw_records(files, fv.output_dir, fv.num_images)
        print(f"Drew {len(written)} record(s) to {fv.output_dir}")
    return 0


def files_as_flags(argv: Sequence[str]) -> list[str]:
    """Positional arguments → `--files=ARG` (the shared flag parser takes flags only)."""
    out, rest = [], iter(argv)
    for arg in rest:
        if arg == "--":
            out += [f"--files={a}" for a in rest]
        elif arg.startswith("-") and arg != "-":
            out.append(arg)
            if "=" not in arg and arg.lstrip("-") in _VALUE_FLAGS:
                out += [v for v in [next(rest, None)] if v is not None]
        else:
            out.append(f"--files={arg}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; `argv` without the program name (None: `sys.argv`). The exit status."""
    argv = sys.argv[1:] if argv is None else argv
    return cli.main("inspect_records", define_flags, run, files_as_flags(argv), __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
