"""Joint sets: names, left/right partners, skeleton edges and PCK groups.

This is the one place that knows joint indices. Everything else asks a `JointSet` for indices by
name, so that a reordering here cannot silently break flipping, drawing or evaluation.

Orders follow the sources (0-based):
  * MPII: MPII's `annopoints.point.id`, the order of every MPII file (pose-hg `.h5`, HRNet json,
    `detections_our_format.mat`).
  * FLIC: pose-hg-train's 11-joint order (`data/flic/annot/*.h5`).
  * Synthetic: the MPII joint set, so a model trained on the synthetic people reads like an MPII
    model.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class JointSet:
    """A dataset's joints and how to flip, draw and score them.

    Attributes:
        name: dataset name ("mpii", "flic", "synthetic").
        names: joint names in the source order.
        swap_pairs: (left, right) name pairs exchanged by a horizontal flip.
        skeleton: (a, b) name pairs drawn as limbs.
        pck_groups: table column → joint names averaged in that column, in table order.
        mean_excludes: joints left out of the pooled "Mean" column (MPII: pelvis, thorax).
        normalizer: "head" (PCKh, 0.6 × head-box diagonal) or "torso" (PCK, see `torso_joints`).
        torso_joints: for "torso", the two joints whose distance is the torso size.
        pck_threshold: the standard threshold for this dataset (0.5 for PCKh, 0.2 for PCK).
    """

    name: str
    names: tuple[str, ...]
    swap_pairs: tuple[tuple[str, str], ...]
    skeleton: tuple[tuple[str, str], ...]
    pck_groups: tuple[tuple[str, tuple[str, ...]], ...]
    mean_excludes: tuple[str, ...] = ()
    normalizer: str = "head"
    torso_joints: tuple[str, str] | None = None
    pck_threshold: float = 0.5

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Duplicate joint names in {self.name}: {self.names}")
        referenced = [n for pair in self.swap_pairs + self.skeleton for n in pair]
        referenced += [n for _, group in self.pck_groups for n in group]
        referenced += list(self.mean_excludes) + list(self.torso_joints or ())
        unknown = sorted(set(referenced) - set(self.names))
        if unknown:
            raise ValueError(f"Joint set {self.name} refers to unknown joints {unknown}")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """0-based index of a joint name; `KeyError` naming the valid names otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"No joint {name!r} in {self.name}; joints are {self.names}") from None

    def indices(self, names) -> list[int]:
        return [self.index(n) for n in names]

    def flip_permutation(self) -> list[int]:
        """perm such that `flipped[..., j] = original[..., perm[j]]` after a horizontal flip."""
        perm = list(range(self.num_joints))
        for left, right in self.swap_pairs:
            i, j = self.index(left), self.index(right)
            perm[i], perm[j] = j, i
        return perm

    def skeleton_indices(self) -> list[tuple[int, int]]:
        return [(self.index(a), self.index(b)) for a, b in self.skeleton]

    def group_indices(self, head: str = "head_top") -> dict[str, list[int]]:
        """Table column → joint indices.

        Args:
            head: for MPII, "head_top" (HRNet/mmpose/bearpaw convention: Head is head_top only)
                or "neck_and_top" (MPII's own evaluation: Head averages upper_neck and head_top).
        """
        groups = {}
        for column, names in self.pck_groups:
            if column == "Head" and self.name in ("mpii", "synthetic"):
                if head == "neck_and_top":
                    names = ("upper_neck", "head_top")
                elif head != "head_top":
                    raise ValueError(f"head must be 'head_top' or 'neck_and_top', got {head!r}")
            groups[column] = self.indices(names)
        return groups

    def mean_indices(self) -> list[int]:
        """Joints pooled into the "Mean" column."""
        excluded = set(self.indices(self.mean_excludes))
        return [i for i in range(self.num_joints) if i not in excluded]


_MPII_NAMES = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)
_MPII_SWAPS = (
    ("l_ankle", "r_ankle"),
    ("l_knee", "r_knee"),
    ("l_hip", "r_hip"),
    ("l_wrist", "r_wrist"),
    ("l_elbow", "r_elbow"),
    ("l_shoulder", "r_shoulder"),
)
_MPII_SKELETON = (
    ("r_ankle", "r_knee"),
    ("r_knee", "r_hip"),
    ("r_hip", "pelvis"),
    ("l_hip", "pelvis"),
    ("l_knee", "l_hip"),
    ("l_ankle", "l_knee"),
    ("pelvis", "thorax"),
    ("thorax", "upper_neck"),
    ("upper_neck", "head_top"),
    ("r_wrist", "r_elbow"),
    ("r_elbow", "r_shoulder"),
    ("r_shoulder", "thorax"),
    ("l_shoulder", "thorax"),
    ("l_elbow", "l_shoulder"),
    ("l_wrist", "l_elbow"),
)
_MPII_GROUPS = (
    ("Head", ("head_top",)),
    ("Shoulder", ("l_shoulder", "r_shoulder")),
    ("Elbow", ("l_elbow", "r_elbow")),
    ("Wrist", ("l_wrist", "r_wrist")),
    ("Hip", ("l_hip", "r_hip")),
    ("Knee", ("l_knee", "r_knee")),
    ("Ankle", ("l_ankle", "r_ankle")),
)

MPII = JointSet(
    name="mpii",
    names=_MPII_NAMES,
    swap_pairs=_MPII_SWAPS,
    skeleton=_MPII_SKELETON,
    pck_groups=_MPII_GROUPS,
    mean_excludes=("pelvis", "thorax"),
    normalizer="head",
    pck_threshold=0.5,
)

SYNTHETIC = dataclasses.replace(MPII, name="synthetic")

FLIC = JointSet(
    name="flic",
    names=(
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "r_shoulder",
        "r_elbow",
        "r_wrist",
        "l_hip",
        "r_hip",
        "l_eye",
        "r_eye",
        "nose",
    ),
    swap_pairs=(
        ("l_shoulder", "r_shoulder"),
        ("l_elbow", "r_elbow"),
        ("l_wrist", "r_wrist"),
        ("l_hip", "r_hip"),
        ("l_eye", "r_eye"),
    ),
    skeleton=(
        ("l_wrist", "l_elbow"),
        ("l_elbow", "l_shoulder"),
        ("l_shoulder", "r_shoulder"),
        ("r_shoulder", "r_elbow"),
        ("r_elbow", "r_wrist"),
        ("l_shoulder", "l_hip"),
        ("r_shoulder", "r_hip"),
        ("l_hip", "r_hip"),
        ("l_eye", "r_eye"),
        ("l_eye", "nose"),
        ("r_eye", "nose"),
    ),
    pck_groups=(
        ("Head", ("l_eye", "r_eye", "nose")),
        ("Shoulder", ("l_shoulder", "r_shoulder")),
        ("Elbow", ("l_elbow", "r_elbow")),
        ("Wrist", ("l_wrist", "r_wrist")),
        ("Hip", ("l_hip", "r_hip")),
    ),
    normalizer="torso",
    torso_joints=("r_shoulder", "l_hip"),
    pck_threshold=0.2,
)

_JOINT_SETS = {js.name: js for js in (MPII, FLIC, SYNTHETIC)}
JOINT_SET_NAMES = tuple(_JOINT_SETS)


def get_joint_set(name: str) -> JointSet:
    """The joint set of a dataset name ("mpii", "flic", "synthetic")."""
    try:
        return _JOINT_SETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {name!r}; expected one of {sorted(_JOINT_SETS)}"
        ) from None
