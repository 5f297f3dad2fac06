"""Former home of the dataset code, now under `stacked_hourglass.data` (sources, records).

Kept only so that `python -m stacked_hourglass.datasets.inspect ...` keeps working.
"""
