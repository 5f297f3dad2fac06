"""Joint sets: names, left/right partners, skeleton edges and PCK groups.

This is the one place that knows joint indices. Everything else asks a `JointSet` for indices by
name, so that a reordering here cannot silently break flipping, drawing or evaluation.

Orders follow the sources (0-based):
  * MPII: MPII's `annopoints.point.id`, the order of every MPII file (pose-hg `.h5`, HRNet json,
    `detections_our_format.mat`).
  * FLIC: pose-hg-train's 11-joint order (`data/flic/annot/*.h5`).
  * Synthetic: the MPII joint set, so a model trained on the synthetic people reads like an MPII
    model.
  * COCO: the 17 keypoints of COCO's person category, in `categories[0].keypoints` order.

A joint set of one's own comes from a JSON file in the format of `JointSet.to_dict` (the README's
"Your own keypoints" has a worked example) or from a COCO annotation file's category
(`from_coco_category`). It travels with the data and the model as that same dictionary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping


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
        normalizer: the PCK reference length stored in each record: "head" (PCKh, 0.6 ×
            head-box diagonal), "torso" (PCK, see `torso_joints`) or "box" (the person box's
            longer side, as mmpose's PCK for animal and hand datasets).
        torso_joints: for "torso", the two joints whose distance is the torso size.
        pck_threshold: the standard threshold for this dataset (0.5 for PCKh, 0.2 for PCK, 0.05
            for the box, mmpose's default).
        oks_sigmas: per-joint OKS sigmas (COCO keypoint AP), or None for sets scored by PCK
            only.
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
    oks_sigmas: tuple[float, ...] | None = None

    def __post_init__(self):
        if not self.names:
            raise ValueError(f"Joint set {self.name!r} has no joints")
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Joint set {self.name!r} has duplicate joint names {duplicates}")
        referenced = [n for pair in self.swap_pairs + self.skeleton for n in pair]
        referenced += [n for _, group in self.pck_groups for n in group]
        referenced += list(self.mean_excludes) + list(self.torso_joints or ())
        unknown = sorted(set(referenced) - set(self.names))
        if unknown:
            raise ValueError(f"Joint set {self.name!r} refers to unknown joints {unknown}")
        self._check_pairs()
        if self.normalizer not in NORMALIZERS:
            raise ValueError(
                f"Joint set {self.name!r}: normalizer must be one of {NORMALIZERS}, "
                f"got {self.normalizer!r}"
            )
        if self.normalizer == "torso" and self.torso_joints is None:
            raise ValueError(f"Joint set {self.name!r}: normalizer 'torso' needs torso_joints")
        if not (math.isfinite(self.pck_threshold) and self.pck_threshold > 0):
            raise ValueError(
                f"Joint set {self.name!r}: pck_threshold must be > 0, got {self.pck_threshold}"
            )
        self._check_sigmas()

    def _check_pairs(self):
        """Each flip pair joins two different joints, and no joint is in two pairs."""
        seen = set()
        for left, right in self.swap_pairs:
            if left == right or left in seen or right in seen:
                raise ValueError(
                    f"Joint set {self.name!r}: flip pair ({left!r}, {right!r}) pairs a joint "
                    "with itself or repeats a joint of another pair"
                )
            seen.update((left, right))

    def _check_sigmas(self):
        if self.oks_sigmas is None:
            return
        if len(self.oks_sigmas) != len(self.names):
            raise ValueError(
                f"Joint set {self.name!r}: oks_sigmas has {len(self.oks_sigmas)} values for "
                f"{len(self.names)} joints"
            )
        bad = [s for s in self.oks_sigmas if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ValueError(f"Joint set {self.name!r}: oks_sigmas must be > 0, got {bad[0]}")

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

    def to_dict(self) -> dict:
        """The joint set as JSON-ready data: the joint-set file format (`from_dict` reads it).

        Keys: "name", "joints" (names in channel order), "flip_pairs" and "skeleton" (lists of
        name pairs), "pck_groups" ([column, names] pairs, in table order: a list, as a JSON
        object's key order does not survive writers that sort keys; `from_dict` also reads the
        {column: names} object a hand-written file may hold), "mean_excludes",
        "normalizer", "torso_joints" (or null), "pck_threshold", "oks_sigmas" (or null).
        """
        return {
            "name": self.name,
            "joints": list(self.names),
            "flip_pairs": [list(pair) for pair in self.swap_pairs],
            "skeleton": [list(edge) for edge in self.skeleton],
            "pck_groups": [[column, list(names)] for column, names in self.pck_groups],
            "mean_excludes": list(self.mean_excludes),
            "normalizer": self.normalizer,
            "torso_joints": list(self.torso_joints) if self.torso_joints else None,
            "pck_threshold": self.pck_threshold,
            "oks_sigmas": list(self.oks_sigmas) if self.oks_sigmas is not None else None,
        }

    @classmethod
    def from_dict(cls, payload: Mapping, source: str = "joint set") -> JointSet:
        """Reads `to_dict` output or a joint-set file's contents.

        Only "name" and "joints" are required. Defaults: no flip pairs, no skeleton, PCK groups
        from `default_pck_groups`, normalizer "box", pck_threshold 0.05 for "box" (0.5 for
        "head", 0.2 for "torso"), no OKS sigmas. Known built-in sets (same name and joints) come
        back as the built-in object.

        Raises:
            ValueError: one line naming `source` and the field that is wrong.
        """
        try:
            joint_set = _from_dict(payload)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            message = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
            raise ValueError(f"{source}: {message}") from None
        builtin = _JOINT_SETS.get(joint_set.name)
        return builtin if builtin == joint_set else joint_set


NORMALIZERS = ("head", "torso", "box")
_DEFAULT_THRESHOLDS = {"head": 0.5, "torso": 0.2, "box": 0.05}
_FIELDS = {
    "name", "joints", "flip_pairs", "skeleton", "pck_groups", "mean_excludes", "normalizer",
    "torso_joints", "pck_threshold", "oks_sigmas",
}  # fmt: skip


def _pairs(payload: Mapping, key: str) -> tuple[tuple[str, str], ...]:
    pairs = tuple(tuple(str(n) for n in pair) for pair in payload.get(key) or ())
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{key}: each entry must be two joint names, got {list(pair)}")
    return pairs


def _from_dict(payload: Mapping) -> JointSet:
    if not isinstance(payload, Mapping):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; fields are {sorted(_FIELDS)}")
    for key in ("name", "joints"):
        if not payload.get(key):
            raise ValueError(f"field {key!r} is missing or empty")
    names = tuple(str(n) for n in payload["joints"])
    if isinstance(payload["joints"], str):
        raise ValueError("field 'joints' must be a list of names, got a string")
    swap_pairs = _pairs(payload, "flip_pairs")
    for pair in swap_pairs:
        unknown = [n for n in pair if n not in names]
        if unknown:
            raise ValueError(f"flip pair {list(pair)} names unknown joint {unknown[0]!r}")
    normalizer = str(payload.get("normalizer") or "box")
    groups = payload.get("pck_groups")
    pck_groups = (
        tuple(
            (str(c), tuple(str(n) for n in g))
            for c, g in (groups.items() if isinstance(groups, Mapping) else groups)
        )
        if groups
        else default_pck_groups(names, swap_pairs)
    )
    torso = payload.get("torso_joints")
    sigmas = payload.get("oks_sigmas")
    return JointSet(
        name=str(payload["name"]),
        names=names,
        swap_pairs=swap_pairs,
        skeleton=_pairs(payload, "skeleton"),
        pck_groups=pck_groups,
        mean_excludes=tuple(str(n) for n in payload.get("mean_excludes") or ()),
        normalizer=normalizer,
        torso_joints=tuple(str(n) for n in torso) if torso else None,
        pck_threshold=float(payload.get("pck_threshold") or _DEFAULT_THRESHOLDS.get(normalizer, 0)),
        oks_sigmas=tuple(float(v) for v in sigmas) if sigmas is not None else None,
    )


def side_and_part(name: str) -> tuple[str, str]:
    """("left" | "right" | "", the rest) of a joint name, for the spellings `l_x`, `left_x`,
    `x_l`, `x_left` (any case; "-" or " " as separators too): `side_and_part("r_knee")` is
    ("right", "knee") and `side_and_part("nose")` is ("", "nose")."""
    words = name.lower().replace("-", "_").replace(" ", "_").split("_")
    sides = {"l": "left", "left": "left", "r": "right", "right": "right"}
    if len(words) > 1 and words[0] in sides:
        return sides[words[0]], "_".join(words[1:])
    if len(words) > 1 and words[-1] in sides:
        return sides[words[-1]], "_".join(words[:-1])
    return "", "_".join(words)


def canonical_name(name: str) -> str:
    """A joint name with one spelling of its side: "r_knee", "right_knee" and "knee_r" are all
    "right_knee" (how fine-tuning matches joints of two sets)."""
    side, part = side_and_part(name)
    return f"{side}_{part}" if side else part


def infer_flip_pairs(names) -> tuple[tuple[str, str], ...]:
    """(left, right) pairs of names that differ only in their side (`side_and_part`), in the
    order of the left joints."""
    by_key = {side_and_part(n): n for n in names}
    pairs = []
    for name in names:
        side, part = side_and_part(name)
        if side == "left" and ("right", part) in by_key:
            pairs.append((name, by_key[("right", part)]))
    return tuple(pairs)


def default_pck_groups(names, swap_pairs) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """One PCK column per left/right pair (named by the part, e.g. "knee") and one per joint in
    no pair, in joint order."""
    partner = {a: b for a, b in swap_pairs} | {b: a for a, b in swap_pairs}
    groups, done = [], set()
    for name in names:
        if name in done:
            continue
        if name in partner:
            pair = tuple(sorted((name, partner[name]), key=list(names).index))
            groups.append((side_and_part(name)[1] or name, pair))
            done.update(pair)
        else:
            groups.append((name, (name,)))
            done.add(name)
    return tuple(groups)


def from_coco_category(category: Mapping, source: str = "category") -> tuple[JointSet, str]:
    """The joint set of a COCO annotation file's category, and one line saying what was inferred.

    Names come from `keypoints`, the skeleton from `skeleton` (1-based joint numbers there), flip
    pairs from left/right name spellings (`infer_flip_pairs`). A category whose joints are COCO's
    17 gives the built-in `COCO` set (with pycocotools' OKS sigmas); any other has no sigmas.

    Raises:
        ValueError: one line naming `source` (no keypoints, a skeleton edge out of range...).
    """
    names = tuple(str(n) for n in category.get("keypoints") or ())
    if not names:
        raise ValueError(f"{source}: category has no 'keypoints' names")
    if names == COCO.names:
        return COCO, f"{source}: COCO's 17 person keypoints (built-in joint set 'coco')"
    skeleton = []
    for edge in category.get("skeleton") or ():
        if len(edge) != 2 or not all(isinstance(i, int) and 1 <= i <= len(names) for i in edge):
            raise ValueError(
                f"{source}: skeleton edge {edge} is not two joint numbers in 1..{len(names)}"
            )
        skeleton.append((names[edge[0] - 1], names[edge[1] - 1]))
    pairs = infer_flip_pairs(names)
    joint_set = JointSet.from_dict(
        {
            "name": str(category.get("name") or "custom"),
            "joints": list(names),
            "flip_pairs": [list(p) for p in pairs],
            "skeleton": [list(e) for e in skeleton],
        },
        source,
    )
    inferred = ", ".join(f"{a}/{b}" for a, b in pairs) or "none"
    return joint_set, f"{source}: {len(names)} joints; flip pairs inferred from names: {inferred}"


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

_COCO_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# person_keypoints_*.json's category skeleton, 1-based as there.
_COCO_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
# pycocotools' COCOeval.Params.kpt_oks_sigmas (there ×10: .26, .25, ...).
_COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
)  # fmt: skip

COCO = JointSet(
    name="coco",
    names=_COCO_NAMES,
    swap_pairs=infer_flip_pairs(_COCO_NAMES),
    skeleton=tuple((_COCO_NAMES[a - 1], _COCO_NAMES[b - 1]) for a, b in _COCO_SKELETON_1BASED),
    pck_groups=(
        ("Head", ("nose", "left_eye", "right_eye", "left_ear", "right_ear")),
        ("Shoulder", ("left_shoulder", "right_shoulder")),
        ("Elbow", ("left_elbow", "right_elbow")),
        ("Wrist", ("left_wrist", "right_wrist")),
        ("Hip", ("left_hip", "right_hip")),
        ("Knee", ("left_knee", "right_knee")),
        ("Ankle", ("left_ankle", "right_ankle")),
    ),
    normalizer="box",
    pck_threshold=0.05,
    oks_sigmas=_COCO_SIGMAS,
)

_JOINT_SETS = {js.name: js for js in (MPII, FLIC, SYNTHETIC, COCO)}
JOINT_SET_NAMES = tuple(_JOINT_SETS)


def get_joint_set(name: str) -> JointSet:
    """The built-in joint set of a name ("mpii", "flic", "synthetic", "coco")."""
    try:
        return _JOINT_SETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {name!r}; expected one of {sorted(_JOINT_SETS)}"
        ) from None
