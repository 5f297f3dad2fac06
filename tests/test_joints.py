"""Joint sets: the built-in ones, the joint-set file format, sets inferred from COCO categories."""

import json

import pytest

from stacked_hourglass import joints

HAND = {
    "name": "hand5",
    "joints": ["thumb", "index", "middle", "ring", "little"],
    "skeleton": [["thumb", "index"], ["index", "middle"]],
    "oks_sigmas": [0.025, 0.025, 0.025, 0.025, 0.025],
}


@pytest.mark.parametrize("joint_set", [joints.MPII, joints.FLIC, joints.SYNTHETIC, joints.COCO])
def test_builtin_sets_round_trip_through_json_as_themselves(joint_set):
    payload = json.loads(json.dumps(joint_set.to_dict()))
    assert joints.JointSet.from_dict(payload) is joint_set


def test_coco_set_is_cocos_order_pairs_and_pycocotools_sigmas():
    coco = joints.get_joint_set("coco")
    assert coco.num_joints == 17
    assert coco.names[:3] == ("nose", "left_eye", "right_eye")
    assert coco.names[-1] == "right_ankle"
    assert len(coco.swap_pairs) == 8
    assert coco.flip_permutation()[:5] == [0, 2, 1, 4, 3]
    # pycocotools: np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
    # .87, .87, .89, .89]) / 10.0
    assert coco.oks_sigmas[0] == pytest.approx(0.026)
    assert coco.oks_sigmas[11] == pytest.approx(0.107)
    # COCO's skeleton edge [16, 14] (1-based) is left_ankle-left_knee.
    assert coco.skeleton[0] == ("left_ankle", "left_knee")
    assert len(coco.skeleton) == 19


def test_minimal_file_gets_defaults():
    hand = joints.JointSet.from_dict(HAND, "hand.json")
    assert hand.swap_pairs == ()
    assert hand.normalizer == "box" and hand.pck_threshold == 0.05
    assert [column for column, _ in hand.pck_groups] == list(HAND["joints"])
    assert joints.JointSet.from_dict(hand.to_dict()) == hand


def test_default_groups_pair_left_and_right():
    names = ("nose", "l_eye", "r_eye", "tail")
    groups = joints.default_pck_groups(names, joints.infer_flip_pairs(names))
    assert groups == (("nose", ("nose",)), ("eye", ("l_eye", "r_eye")), ("tail", ("tail",)))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"joints": ["a", "b", "a"]}, "duplicate joint names ['a']"),
        ({"joints": ["a", "b"], "flip_pairs": [["a", "c"]]}, "names unknown joint 'c'"),
        ({"joints": ["a", "b"], "flip_pairs": [["a", "a"]]}, "pairs a joint with itself"),
        ({"joints": ["a", "b"], "oks_sigmas": [0.1]}, "oks_sigmas has 1 values for 2 joints"),
        ({"joints": ["a", "b"], "oks_sigmas": [0.1, -1]}, "oks_sigmas must be > 0"),
        ({"joints": ["a"], "skeleton": [["a", "z"]]}, "unknown joints ['z']"),
        ({"joints": ["a"], "normalizer": "elbow"}, "normalizer must be one of"),
        ({"joints": ["a"], "colour": "red"}, "unknown field(s) ['colour']"),
        ({"joints": []}, "field 'joints' is missing or empty"),
        ({"joints": "abc"}, "must be a list of names"),
    ],
)
def test_bad_joint_set_file_is_one_line_naming_the_file(change, message):
    with pytest.raises(ValueError) as info:
        joints.JointSet.from_dict({"name": "x", **change}, "my_joints.json")
    text = str(info.value)
    assert text.startswith("my_joints.json: ") and message in text, text
    assert "\n" not in text


def test_side_spellings_are_one_canonical_name():
    assert joints.canonical_name("r_shoulder") == "right_shoulder"
    assert joints.canonical_name("right_shoulder") == "right_shoulder"
    assert joints.canonical_name("Knee_L") == "left_knee"
    assert joints.canonical_name("nose") == "nose"
    mpii = {joints.canonical_name(n) for n in joints.MPII.names}
    common = sorted(mpii & set(joints.COCO.names))
    assert len(common) == 12  # shoulders, elbows, wrists, hips, knees, ankles


def test_coco_category_with_cocos_names_is_the_builtin_set():
    category = {"name": "person", "keypoints": list(joints.COCO.names), "skeleton": []}
    joint_set, line = joints.from_coco_category(category)
    assert joint_set is joints.COCO
    assert "coco" in line


def test_coco_category_infers_pairs_and_1_based_skeleton():
    category = {
        "name": "cat",
        "keypoints": ["nose", "left_ear", "right_ear", "tail"],
        "skeleton": [[1, 2], [1, 3], [1, 4]],
    }
    joint_set, line = joints.from_coco_category(category, "cats.json")
    assert joint_set.name == "cat"
    assert joint_set.swap_pairs == (("left_ear", "right_ear"),)
    assert joint_set.skeleton == (("nose", "left_ear"), ("nose", "right_ear"), ("nose", "tail"))
    assert joint_set.oks_sigmas is None
    assert line == "cats.json: 4 joints; flip pairs inferred from names: left_ear/right_ear"


@pytest.mark.parametrize(
    "category, message",
    [
        ({"keypoints": []}, "category has no 'keypoints' names"),
        ({"keypoints": ["a", "b"], "skeleton": [[0, 1]]}, "skeleton edge [0, 1] is not two"),
        ({"keypoints": ["a", "b"], "skeleton": [[1, 3]]}, "joint numbers in 1..2"),
    ],
)
def test_bad_coco_category_is_one_line(category, message):
    with pytest.raises(ValueError, match="^ann.json: ") as info:
        joints.from_coco_category(category, "ann.json")
    assert message in str(info.value)


def test_to_dict_keeps_the_column_order_through_a_key_sorting_writer():
    import json

    tool = joints.JointSet.from_dict(
        {
            "name": "tool",
            "joints": ["tip", "l_jaw", "r_jaw", "handle"],
            "flip_pairs": [["l_jaw", "r_jaw"]],
        }
    )
    assert [c for c, _ in tool.pck_groups] == ["tip", "jaw", "handle"]
    payload = json.loads(json.dumps(tool.to_dict(), sort_keys=True))
    assert joints.JointSet.from_dict(payload) == tool
