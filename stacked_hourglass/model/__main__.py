"""`python -m stacked_hourglass.model --summary`: runs `stacked_hourglass.summary`."""

import sys

from stacked_hourglass import summary

sys.exit(summary.main())
