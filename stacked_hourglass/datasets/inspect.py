r"""Moved: runs `python -m stacked_hourglass.inspect_records` with the same arguments.

  python -m stacked_hourglass.datasets.inspect tfrecords/mpii/valid-*.tfrecord \
      [--output_dir=DIR] [--num_images=N]
"""

import runpy

if __name__ == "__main__":
    # Run by name rather than imported: entry points are independent of each other (the
    # import-linter layers contract), and this is exactly `python -m` of the new name.
    runpy.run_module("stacked_hourglass.inspect_records", run_name="__main__", alter_sys=True)
