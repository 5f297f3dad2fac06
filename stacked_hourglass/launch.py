r"""Trains on N local worker processes with MultiWorkerMirroredStrategy.

    python -m stacked_hourglass.launch --workers=2 -- --flagfile=configs/demo.flags [train flags]

Starts N `python -m stacked_hourglass.train` processes on 127.0.0.1, each with free ports and its
own `TF_CONFIG` (worker 0 is the chief and the only one that writes the model directory), streams
their output with a `[worker i]` prefix, and stops all of them if one fails. On a real cluster,
start `train` once per machine with that machine's `TF_CONFIG` instead (README "Several
machines"). `--batch_size` stays the global batch, split across all replicas.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.utils import cli


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("workers", 2, "Worker processes.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float(
        "grace_seconds", 10.0, "SIGTERM -> SIGKILL delay when stopping.", flag_values=fv
    )


def main(argv=None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" goes to the workers untouched.
    split = argv.index("--") if "--" in argv else len(argv)
    own, train_args = argv[:split], argv[split + 1 :]

    def run(fv: flags.FlagValues) -> int:
        from stacked_hourglass.workflows import launch_lib

        if not train_args:
            raise cli.UsageError("give the training flags after --, e.g. -- --flagfile=FILE")
        return launch_lib.launch(
            fv["workers"].value, train_args, grace_seconds=fv["grace_seconds"].value
        )

    return cli.main("launch", define_flags, run, own, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
