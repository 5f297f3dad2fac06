"""Synthetic people: a dataset that needs no download, so convert → train → evaluate → export →
predict can run anywhere.

Each image holds one annotated person (a 2-D kinematic stick body drawn as filled, shaded limbs, a
torso polygon and a head ellipse) on a textured background, with distractor people beside or behind
it and random occluders over it. Joints use the MPII set and conventions (`joints.SYNTHETIC`):
left/right are the person's own sides, so a person facing the camera has the right side on the
image left. Two cues make left/right learnable: a face (skin-coloured with eyes and a mouth) on
people facing the camera, hair all over the head of people facing away; and limbs of the person's
left side are drawn darker than those of the right side.

Coordinates: 0-based pixels, (x, y) order, the centre of pixel (0, 0) at (0.0, 0.0), y downward.

Randomness: every example has its own `np.random.default_rng([seed, split_code, index])` stream, so
an example depends only on (split, index, seed), splits use disjoint streams, nothing reads or
touches a global RNG, and examples can be generated in any order or in parallel.

Modules, one per concern (each builds only on the ones before it):

  * `params`: `SyntheticConfig` (the knobs) and `JOINT_SET`;
  * `body`: pose sampling (`sample_pose`) and body geometry (`pose_body` → `Body`);
  * `raster`: anti-aliased drawing primitives and the owner map;
  * `person`: colours (`Style`) and `render_person`;
  * `background`: `render_background` and occluders;
  * `scene`: `render_scene` (composition and annotation) → `Scene`;
  * `generate`: `example_rng`, `encode_jpeg`, `make_example`, `generate_examples`.
"""

from stacked_hourglass.data.sources.synthetic.background import draw_occluder, render_background
from stacked_hourglass.data.sources.synthetic.body import Body, PoseParams, pose_body, sample_pose
from stacked_hourglass.data.sources.synthetic.generate import (
    encode_jpeg,
    example_rng,
    generate_examples,
    make_example,
)
from stacked_hourglass.data.sources.synthetic.params import JOINT_SET, SyntheticConfig
from stacked_hourglass.data.sources.synthetic.person import Style, render_person, sample_style
from stacked_hourglass.data.sources.synthetic.raster import (
    draw_capsule,
    draw_ellipse,
    draw_polygon,
)
from stacked_hourglass.data.sources.synthetic.scene import Scene, render_scene

__all__ = [
    "JOINT_SET",
    "Body",
    "PoseParams",
    "Scene",
    "Style",
    "SyntheticConfig",
    "draw_capsule",
    "draw_ellipse",
    "draw_occluder",
    "draw_polygon",
    "encode_jpeg",
    "example_rng",
    "generate_examples",
    "make_example",
    "pose_body",
    "render_background",
    "render_person",
    "render_scene",
    "sample_pose",
    "sample_style",
]
