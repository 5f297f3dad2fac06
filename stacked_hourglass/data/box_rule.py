"""The margin of the person box → crop rule, importable without TensorFlow or numpy.

The rule itself is `geometry.box_to_center_scale`; the constant lives apart because
`serving.layout` (what a client imports, free of TensorFlow) records it in `joints.json`.
"""

# Crop side = BOX_MARGIN x a person box's longer side: the top-down rule of HRNet's `_xywh2cs`
# and mmpose's `GetBBoxCenterScale` (padding 1.25); MPII's people also fill about 1 / 1.25 of
# their 200·scale crop.
BOX_MARGIN = 1.25
