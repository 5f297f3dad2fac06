"""ExperimentConfig: generated flags, packaged flagfiles, config.json (new, legacy), resolve()."""

import dataclasses
import json
from pathlib import Path

import pytest
from absl import flags

from stacked_hourglass import config as config_lib
from stacked_hourglass import joints
from stacked_hourglass.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
CONFIGS_DIR = Path(config_lib.__file__).parent / "configs"
# Training flagfiles; ablation.flags is the ablation command's (tests/test_ablation.py reads it).
PACKAGED = sorted(p for p in CONFIGS_DIR.glob("*.flags") if p.stem != "ablation")


def _parse(argv, defaults=None):
    fv = flags.FlagValues()
    config_lib.define_flags(fv, defaults)
    fv(["prog", *argv])
    return fv


def _as_flag_value(value):
    return [str(v) for v in value] if isinstance(value, tuple) else value


def test_every_flag_field_is_a_flag_with_its_default():
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    defaults = ExperimentConfig()
    declared = set()
    for section, section_cls in SECTIONS.items():
        for field in dataclasses.fields(section_cls):
            meta = field.metadata
            assert meta.get("help"), f"{section}.{field.name} has no help text"
            if not meta["flag"]:
                continue  # derived (or set by resolve()): checked below
            declared.add(field.name)
            flag = fv[field.name]
            default = getattr(getattr(defaults, section), field.name)
            assert flag.default == _as_flag_value(default), field.name
            assert flag.help.endswith(meta["help"])  # enums prefix "<a|b|c>: "
            if meta.get("choices"):
                assert list(flag.parser.enum_values) == list(meta["choices"])
    # Only the flag fields (and no derived field) are flags.
    assert set(fv) == declared
    assert {f.name for _, f, _, _ in config_lib.flag_fields()} == declared
    for name in ("num_joints", "intermediate_supervision", "stem_padding", "input_mean"):
        assert name not in fv


def test_no_arguments_give_the_default_config():
    assert config_lib.from_flags(_parse([])) == ExperimentConfig()


def test_define_flags_with_other_defaults():
    defaults = ExperimentConfig(
        model=ModelConfig(num_stacks=2, input_size=128),
        train=TrainConfig(lr_drop_epochs=(3, 4), batch_size=8),
    )
    fv = _parse([], defaults)
    assert fv["num_stacks"].default == 2 and fv["lr_drop_epochs"].default == ["3", "4"]
    assert config_lib.from_flags(fv) == defaults


def test_flags_set_fields_of_every_type():
    fv = _parse(
        [
            "--num_stacks=2",
            "--dataset=flic",
            "--sigma=2",
            "--noflip",
            "--supervise=last",
            "--lr_drop_epochs=9,11",
            "--loss_weights=0.5,1",
            "--mixed_precision=bfloat16",
        ]
    )
    config = config_lib.from_flags(fv)
    assert config.model.num_stacks == 2
    assert config.data.dataset == "flic" and config.data.sigma == 2.0 and not config.data.flip
    assert config.train.lr_drop_epochs == (9, 11)
    assert config.train.loss_weights == (0.5, 1.0)
    assert config.train.mixed_precision == "bfloat16"


def test_bad_flag_values():
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(["--supervise=some"])
    with pytest.raises(ValueError, match="--lr_drop_epochs: expected comma-separated ints"):
        config_lib.from_flags(_parse(["--lr_drop_epochs=1,x"]))
    with pytest.raises(ValueError, match="num_features must be even .*got 15"):
        config_lib.from_flags(_parse(["--num_features=15"]))


@pytest.mark.parametrize("path", PACKAGED, ids=[p.stem for p in PACKAGED])
def test_packaged_flagfiles_parse_into_valid_configs(path):
    config = config_lib.from_flags(_parse([f"--flagfile={path}"]))
    resolved = config.resolve()
    assert resolved.model.num_joints == config.data.joint_set.num_joints
    assert f"tfrecords/{config.data.dataset}/" in config.data.train_files
    assert config != ExperimentConfig()
    # Every line of the file names a flag that exists (absl refuses unknown ones) and was read.
    fv = _parse([f"--flagfile={path}"])
    for line in path.read_text().splitlines():
        if line.startswith("--") and "=" in line:
            name = line[2:].split("=", 1)[0]
            assert fv[name].present, name


def test_packaged_flagfiles_exist():
    assert {p.stem for p in PACKAGED} >= {"demo", "flic", "mpii_2stack", "mpii_8stack"}
    demo = config_lib.from_flags(_parse([f"--flagfile={CONFIGS_DIR / 'demo.flags'}"]))
    assert (demo.model.num_stacks, demo.model.input_size) == (2, 128)
    assert demo.train.lr_drop_epochs == (10, 11)


def test_flagfile_round_trip(tmp_path):
    """Parsed flags written out (absl's flagfile format) parse back to the same config."""
    argv = [
        "--num_stacks=3",
        "--input_size=128",
        "--noflip",
        "--lr_drop_epochs=2,5",
        "--dataset=flic",
        "--epsilon=1e-10",
        "--supervise=last",
        "--model_dir=runs/a b",
    ]
    fv = _parse(argv)
    config = config_lib.from_flags(fv)
    flagfile = tmp_path / "run.flags"
    flagfile.write_text(fv.flags_into_string())
    assert config_lib.from_flags(_parse([f"--flagfile={flagfile}"])) == config
    assert config.train.epsilon == 1e-10 and config.train.model_dir == "runs/a b"
    # Flags after the flagfile override it.
    again = config_lib.from_flags(_parse([f"--flagfile={flagfile}", "--num_stacks=1"]))
    assert again == dataclasses.replace(
        config, model=dataclasses.replace(config.model, num_stacks=1)
    )


# --- config.json -------------------------------------------------------------------------

ODD = ExperimentConfig(
    model=ModelConfig(
        num_stacks=2,
        num_features=64,
        input_size=128,
        stem_features=(64, 128, 256),
        stem_padding="same",
        input_mean=(0.4, 0.45, 0.5),
    ),
    data=DataConfig(dataset="flic", sigma=2.0, flip=False),
    train=TrainConfig(lr_drop_epochs=(9, 11), loss_weights=(0.5, 1.0), supervise="all"),
)


def test_to_dict_from_dict_round_trip():
    for config in (ExperimentConfig(), ODD, ODD.resolve()):
        payload = config.to_dict()
        assert set(payload) == {"model", "data", "train"}
        assert ExperimentConfig.from_dict(payload) == config
        # Through JSON (tuples come back as lists).
        assert ExperimentConfig.from_dict(json.loads(json.dumps(payload))) == config


def test_legacy_config_json_loads():
    """config.json as versions before ExperimentConfig wrote it."""
    legacy = {
        "model": {
            "num_stacks": 2,
            "num_features": 64,
            "depth": 4,
            "num_joints": 16,
            "input_size": 128,
            "intermediate_supervision": True,
            "sync_batch_norm": False,
            "num_modules": 1,
        },
        "data": {
            "dataset": "synthetic",
            "train_files": "tfrecords/synthetic/train-*.tfrecord",
            "valid_files": "tfrecords/synthetic/valid-*.tfrecord",
            "input_size": 128,
            "heatmap_size": 32,
            "sigma": 1.0,
            "rotation": 30.0,
            "rotation_prob": 0.4,
            "scale": 0.3,
            "flip": True,
            "color_jitter": 0.4,
            "shuffle_buffer": 1024,
            "seed": 0,
        },
        "train": {
            "model_dir": "runs/demo",
            "batch_size": 8,
            "epochs": 12,
            "steps_per_epoch": 240,
            "learning_rate": 0.001,
            "rho": 0.99,
            "epsilon": 1e-08,
            "lr_factor": 0.2,
            "lr_patience": 3,
            "min_learning_rate": 1e-07,
            "lr_drop_epochs": [9, 11],
            "supervise": "all",
            "loss_weights": [],
            "valid_batches": 0,
            "eval_batch_size": 32,
            "mixed_precision": "none",
            "jit_compile": False,
            "distribution": "auto",
            "tensorboard_images": 4,
            "seed": 0,
            "verbose": 2,
        },
    }
    config = ExperimentConfig.from_dict(json.loads(json.dumps(legacy)))
    assert config.data.scale_aug == 0.3  # renamed from "scale"
    assert config.model.stem_padding == "same"  # those weights saw TF's "same" padding
    assert config.model.input_size == 128 and config.model.num_stacks == 2
    assert config.train.lr_drop_epochs == (9, 11) and config.train.loss_weights == ()
    assert config.train.sync_batch_norm == "auto"  # absent then: today's default
    assert config.resolve().model.num_joints == 16
    # A new file always names its stem padding, and keeps it.
    assert ExperimentConfig.from_dict(ExperimentConfig().to_dict()).model.stem_padding == (
        "symmetric"
    )


def test_missing_sections_take_defaults():
    assert ExperimentConfig.from_dict({}) == ExperimentConfig()
    config = ExperimentConfig.from_dict({"train": {"epochs": 3}})
    assert config.train.epochs == 3 and config.model == ModelConfig()


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"data": {"scael_aug": 0.2}}, "run/config.json: unknown data field\\(s\\) scael_aug"),
        ({"train": {"epochs": 1, "lr": 1, "bs": 2}}, "unknown train field\\(s\\) bs, lr"),
        ({"model": {"num_stacks": 0}}, "run/config.json: model: num_stacks .* got 0"),
        ({"data": {"dataset": "lsp"}}, "data: dataset must be one of .*'lsp'"),
    ],
)
def test_from_dict_errors_name_the_key(payload, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_dict(payload, source="run/config.json")


# --- resolve() ----------------------------------------------------------------------------


def test_resolve_derives_joints_supervision_and_sync_batch_norm():
    for dataset in joints.JOINT_SET_NAMES:
        config = ExperimentConfig(data=DataConfig(dataset=dataset))
        assert config.resolve().model.num_joints == joints.get_joint_set(dataset).num_joints
    assert ExperimentConfig(data=DataConfig(dataset="flic")).resolve().model.num_joints == 11

    last = ExperimentConfig(train=TrainConfig(supervise="last")).resolve()
    assert last.model.intermediate_supervision is False
    assert last.model.output_names == ["heatmaps_8"]
    every = ExperimentConfig().resolve()
    assert every.model.intermediate_supervision is True
    assert every.model.output_names == [f"heatmaps_{i}" for i in range(1, 9)]

    assert ExperimentConfig().resolve().model.sync_batch_norm is False  # one replica
    assert ExperimentConfig().resolve(num_replicas=2).model.sync_batch_norm is True
    no_sync = ExperimentConfig(train=TrainConfig(sync_batch_norm=False))
    assert no_sync.resolve(num_replicas=4).model.sync_batch_norm is False
    # Nothing else changes (but "auto" for unlabelled joints, decided), and resolving twice is
    # resolving once.
    resolved = ODD.resolve()
    assert resolved.data == dataclasses.replace(ODD.data, unlabelled=resolved.data.unlabelled)
    assert resolved.data.unlabelled == ODD.data.unlabelled_rule and resolved.train == ODD.train
    assert dataclasses.replace(resolved.model, num_joints=16) == ODD.model
    assert resolved.resolve() == resolved


@pytest.mark.parametrize(
    "mode, batch_size, replicas, synchronised",
    [
        ("auto", 6, 2, True),  # 3 per replica: fewer than the paper's 6
        ("auto", 11, 2, True),
        ("auto", 12, 2, False),  # 6 per replica: the paper's statistics already
        ("auto", 48, 8, False),
        ("auto", 48, 1, False),  # one replica: nothing to synchronise
        ("always", 48, 2, True),
        ("always", 4, 1, False),
        ("never", 2, 2, False),
    ],
)
def test_sync_batch_norm_follows_the_per_replica_batch(mode, batch_size, replicas, synchronised):
    config = ExperimentConfig(train=TrainConfig(sync_batch_norm=mode, batch_size=batch_size))
    assert config.resolve(num_replicas=replicas).model.sync_batch_norm is synchronised


def test_sync_batch_norm_of_older_files_and_bad_values():
    # Written when the field was a bool: true synchronised with several replicas, whatever the
    # per-replica batch.
    for stored, mode in [(True, "always"), (False, "never")]:
        payload = ExperimentConfig().to_dict()
        payload["train"]["sync_batch_norm"] = stored
        assert ExperimentConfig.from_dict(payload).train.sync_batch_norm == mode
    with pytest.raises(ValueError, match="sync_batch_norm must be one of auto, always, never"):
        TrainConfig(sync_batch_norm="sometimes")
    # Free to change on resume, as the replica count is.
    stored = ExperimentConfig(train=TrainConfig(sync_batch_norm="always")).resolve(2)
    assert config_lib.check_resume(stored, ExperimentConfig().resolve(4)) == []


def test_loss_weights_must_match_the_supervised_outputs():
    model = ModelConfig(num_stacks=2, input_size=64)
    ok = ExperimentConfig(model=model, train=TrainConfig(loss_weights=(0.5, 1.0)))
    assert ok.resolve().train.loss_weights == (0.5, 1.0)
    bad = ExperimentConfig(model=model, train=TrainConfig(loss_weights=(1.0, 1.0, 1.0)))
    with pytest.raises(
        ValueError,
        match=r"loss_weights has 3 values but the model has 2 supervised outputs "
        r"\['heatmaps_1', 'heatmaps_2'\]",
    ):
        bad.resolve()
    last = ExperimentConfig(
        model=model, train=TrainConfig(supervise="last", loss_weights=(0.5, 1.0))
    )
    with pytest.raises(ValueError, match="2 values but the model has 1 supervised outputs"):
        last.resolve()


def test_section_validation_shows_values():
    with pytest.raises(ValueError, match="rotation_prob must be in \\[0, 1\\], got 1.5"):
        DataConfig(rotation_prob=1.5)
    with pytest.raises(ValueError, match="scale_aug must be in \\[0, 1\\), got 1"):
        DataConfig(scale_aug=1)
    with pytest.raises(ValueError, match="sigma must be > 0, got 0"):
        DataConfig(sigma=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="distribution must be one of .*; got 'gpu'"):
        TrainConfig(distribution="gpu")
    with pytest.raises(ValueError, match="learning_rate must be > 0, got -1"):
        TrainConfig(learning_rate=-1)


def _resumable(**train):
    return config_lib.ExperimentConfig(train=config_lib.TrainConfig(**train)).resolve()


def test_resume_with_the_same_config_or_free_fields_changed_passes():
    stored = _resumable()
    assert config_lib.check_resume(stored, _resumable(verbose=0, model_dir="elsewhere")) == []


def test_resume_refuses_fixed_fields_even_when_named():
    stored = _resumable(batch_size=32)
    new = _resumable(batch_size=64, allow_config_change=("batch_size",))
    with pytest.raises(ValueError, match=r"train.batch_size 32 -> 64 \(cannot change: the data "):
        config_lib.check_resume(stored, new)
    other_model = dataclasses.replace(stored, model=dataclasses.replace(stored.model, num_stacks=2))
    with pytest.raises(ValueError, match="model.num_stacks 8 -> 2 .cannot change: the weights"):
        config_lib.check_resume(stored, other_model)


def test_resume_lists_every_unnamed_change_and_accepts_named_ones():
    stored = _resumable()
    new = _resumable(epochs=200, lr_patience=3, checkpoint_every_steps=100)
    with pytest.raises(ValueError) as error:
        config_lib.check_resume(stored, new)
    message = str(error.value)
    assert "\n" not in message
    for name, old, value in [("epochs", 100, 200), ("lr_patience", 5, 3),
                             ("checkpoint_every_steps", 500, 100)]:  # fmt: skip
        assert f"train.{name} {old} -> {value} (--allow_config_change={name} allows it)" in message
    allowed = _resumable(
        epochs=200, lr_patience=3, checkpoint_every_steps=100,
        allow_config_change=("epochs", "train.lr_patience", "checkpoint_every_steps"),
    )  # fmt: skip
    assert config_lib.check_resume(stored, allowed) == [
        "train.epochs", "train.lr_patience", "train.checkpoint_every_steps"
    ]  # fmt: skip


def test_allow_config_change_names_fields():
    with pytest.raises(ValueError, match="names no config field: epoch, data.nope"):
        config_lib.TrainConfig(allow_config_change=("epoch", "data.nope", "data.sigma"))


def test_unlabelled_defaults_by_joint_set_and_resolve_records_them():
    """auto: zero (the paper's recipe) for mpii/flic/synthetic, ignore for coco; resolve()
    writes the rule into the config (config.json), an explicit value wins."""
    assert DataConfig().unlabelled == "auto"
    for dataset, rule in (
        ("mpii", "zero"),
        ("flic", "zero"),
        ("synthetic", "zero"),
        ("coco", "ignore"),
    ):
        config = ExperimentConfig(data=DataConfig(dataset=dataset))
        assert config.data.unlabelled_rule == rule
        resolved = config.resolve()
        assert resolved.to_dict()["data"]["unlabelled"] == rule
        assert resolved.resolve() == resolved
    mpii_ignoring = ExperimentConfig(data=DataConfig(unlabelled="ignore")).resolve()
    assert mpii_ignoring.data.unlabelled == "ignore"
    coco = config_lib.from_flags(_parse(["--dataset=coco", "--unlabelled=zero"]))
    assert coco.resolve().data.unlabelled == "zero"
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(["--unlabelled=mask"])
    with pytest.raises(ValueError, match="unlabelled must be one of auto, ignore, zero; got 'x'"):
        DataConfig(unlabelled="x")


def test_config_json_without_unlabelled_trained_them_to_zero():
    """A config.json written before the rule existed resumes as "zero", whatever its joint set."""
    payload = ExperimentConfig(data=DataConfig(dataset="coco")).resolve().to_dict()
    del payload["data"]["unlabelled"]
    stored = ExperimentConfig.from_dict(payload)
    assert stored.data.unlabelled == "zero"
    assert stored.resolve().data.unlabelled == "zero"
    # A run resumes under its stored rule; another one only when --allow_config_change names it.
    coco = ExperimentConfig(data=DataConfig(dataset="coco")).resolve()
    assert config_lib.check_resume(coco, coco) == []
    with pytest.raises(ValueError, match=r"data.unlabelled 'zero' -> 'ignore' \(--allow_config"):
        config_lib.check_resume(stored, coco)
    allowed = dataclasses.replace(coco, train=TrainConfig(allow_config_change=("unlabelled",)))
    assert config_lib.check_resume(stored, allowed) == ["data.unlabelled"]


@pytest.mark.parametrize("stacks", [8, 2])
def test_coco_flagfiles_are_the_mpii_recipe_on_coco(stacks):
    """configs/coco_Nstack.flags differ from mpii_Nstack.flags in the data and run folder only;
    unlabelled joints are ignored there and trained to zero in the paper's MPII recipe."""
    coco, mpii = (
        config_lib.from_flags(_parse([f"--flagfile={CONFIGS_DIR / f'{name}_{stacks}stack.flags'}"]))
        for name in ("coco", "mpii")
    )
    differing = {
        f"{section}.{key}"
        for section, values in coco.to_dict().items()
        for key, value in values.items()
        if mpii.to_dict()[section][key] != value
    }
    assert differing == {
        "data.dataset",
        "data.train_files",
        "data.valid_files",
        "data.unlabelled",
        "train.model_dir",
    }
    coco, mpii = coco.resolve(), mpii.resolve()
    assert (coco.model.num_stacks, coco.model.input_size, coco.model.num_joints) == (
        stacks,
        256,
        17,
    )
    assert coco.data.unlabelled == "ignore" and mpii.data.unlabelled == "zero"


# --- the joint set: --joints, the records' manifest, config.json, resume ---------------------

TOOL = {
    "name": "tool",
    "joints": ["tip", "left_jaw", "right_jaw", "pivot", "handle"],
    "flip_pairs": [["left_jaw", "right_jaw"]],
    "skeleton": [["tip", "pivot"], ["pivot", "handle"]],
    "pck_groups": {"tip": ["tip"], "jaw": ["left_jaw", "right_jaw"], "rest": ["pivot", "handle"]},
}


def test_a_joint_set_file_given_by_joints_goes_into_config_json_and_back(tmp_path):
    path = tmp_path / "tool.json"
    path.write_text(json.dumps(TOOL))
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    fv(["prog", f"--joints={path}", "--dataset=coco"])
    config = config_lib.from_flags(fv)
    assert config.data.joints == str(path) and config.data.joint_set_spec is None
    config = config_lib.with_records_joint_set(config, None, "train-*.tfrecord").resolve()
    assert config.model.num_joints == 5
    # config.json is written with sorted keys: the columns keep their order all the same.
    written = json.loads(json.dumps(config.to_dict(), sort_keys=True))
    back = ExperimentConfig.from_dict(written, "config.json")
    assert back == config
    assert back.data.joint_set.names == ("tip", "left_jaw", "right_jaw", "pivot", "handle")
    assert [c for c, _ in back.data.joint_set.pck_groups] == ["tip", "jaw", "rest"]
    assert back.data.joint_set.swap_pairs == (("left_jaw", "right_jaw"),)


def test_the_records_joint_set_is_the_run_s_unless_joints_names_one():
    tool = joints.JointSet.from_dict(TOOL)
    config = ExperimentConfig(data=DataConfig(dataset="coco"))
    assert config_lib.with_records_joint_set(config, tool, "t").data.joint_set == tool
    # No manifest: --joints, else the built-in set of --dataset.
    assert config_lib.with_records_joint_set(config, None, "t").data.joint_set == joints.COCO
    named = ExperimentConfig(data=DataConfig(dataset="coco", joints="mpii"))
    assert config_lib.with_records_joint_set(named, None, "t").data.joint_set == joints.MPII
    assert config_lib.with_records_joint_set(named, joints.MPII, "t").data.joint_set.name == "mpii"
    # Records of a built-in set: --dataset's (the records' check refuses another, as before).
    builtin = config_lib.with_records_joint_set(config, joints.SYNTHETIC, "t")
    assert builtin.data.joint_set == joints.COCO


def test_records_of_another_joint_set_than_joints_is_one_line():
    tool = joints.JointSet.from_dict(TOOL)
    config = ExperimentConfig(data=DataConfig(dataset="coco", joints="coco"))
    with pytest.raises(ValueError) as error:
        config_lib.with_records_joint_set(config, tool, "train-*.tfrecord")
    assert str(error.value) == (
        "train-*.tfrecord holds records of joint set 'tool' (5 joints: tip, left_jaw, "
        "right_jaw, pivot, handle), --joints=coco has 'coco' (17 joints: nose, left_eye, "
        "right_eye, left_ear, right_ear, left_shoulder, right_shoulder, left_elbow, ...)"
    )


@pytest.mark.parametrize(
    "write, message",
    [
        (None, "--joints={path}: neither a built-in joint set (mpii, flic, synthetic, coco) nor "),
        ("{", "{path}: not a valid joint-set file"),
        (json.dumps({**TOOL, "flip_pairs": [["tip", "nib"]]}), "{path}: flip pair"),
    ],
)
def test_bad_joint_set_files_are_one_line(tmp_path, write, message):
    path = tmp_path / "tool.json"
    if write is not None:
        path.write_text(write)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        config_lib.load_joint_set(str(path), "coco")
    assert str(error.value).startswith(message.format(path=path))
    assert "\n" not in str(error.value)


def test_resume_keeps_the_joint_set():
    tool = joints.JointSet.from_dict(TOOL)
    base = ExperimentConfig(data=DataConfig(dataset="coco"))
    stored = config_lib.with_records_joint_set(base, tool, "t").resolve()
    other = config_lib.with_records_joint_set(base, joints.COCO, "t").resolve()
    with pytest.raises(ValueError, match=r"data.joint_set_spec \"'tool' \(5 joints: tip, "):
        config_lib.check_resume(stored, other)
    # --joints itself may change (the set it resolves to is what is checked).
    same = dataclasses.replace(stored, data=dataclasses.replace(stored.data, joints="x.json"))
    assert config_lib.check_resume(stored, same) == []
    # A config.json written before the joint set was recorded holds its dataset's built-in set.
    old = ExperimentConfig(data=DataConfig(dataset="coco")).resolve()
    assert config_lib.check_resume(old, other) == []
