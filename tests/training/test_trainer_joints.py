"""The joint set of a training run: taken from the training records' manifest, checked against
--joints and the validation records, recorded in config.json and fixed on resume."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os

import keras
import numpy as np
import pytest

from stacked_hourglass import run_dir
from stacked_hourglass.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from stacked_hourglass.training import trainer

TINY_MODEL = ModelConfig(num_stacks=1, num_features=16, depth=1, input_size=64)


def _config(train_files, valid_files, model_dir, **data) -> ExperimentConfig:
    """1 epoch x 1 step of batch 2 (the records' dataset field says nothing of their joints)."""
    return ExperimentConfig(
        model=TINY_MODEL,
        data=DataConfig(
            dataset="synthetic",
            train_files=train_files,
            valid_files=valid_files,
            shuffle_buffer=4,
            **data,
        ),
        train=TrainConfig(
            model_dir=str(model_dir),
            batch_size=2,
            epochs=1,
            steps_per_epoch=1,
            eval_batch_size=4,
            tensorboard_images=0,
            verbose=0,
        ),  # fmt: skip
    )


@pytest.fixture(scope="module")
def tool_run(tool_records, make_model_dir, tmp_path_factory):
    """A 1-step run on the tool records, started from a 1-stack MPII model (--init_from) whose
    head_top channel becomes the tip's (--joint_map), under --unlabelled=ignore."""
    root = tmp_path_factory.mktemp("tool_run")
    source = str(root / "mpii")
    make_model_dir(source, num_stacks=1, dataset="mpii")
    config = _config(
        tool_records["train"], tool_records["valid"], root / "run", unlabelled="ignore"
    )
    train = dataclasses.replace(config.train, init_from=source, joint_map=("head_top:tip",))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = trainer.train(dataclasses.replace(config, train=train))
    return {"run": root / "run", "summary": summary, "source": source, "printed": printed}


def test_the_joint_set_comes_from_the_training_records_manifest(tool_run, tool_records):
    config = run_dir.load_config(str(tool_run["run"]))
    assert config.data.joint_set == tool_records["joint_set"]
    assert config.data.joint_set.names == ("tip", "left_jaw", "right_jaw", "pivot", "handle")
    assert config.model.num_joints == 5
    model = run_dir.load_model(str(tool_run["run"]))
    assert model.output["heatmaps_1"].shape[-1] == 5
    validation = tool_run["summary"]["validation"]
    assert tool_run["summary"]["validation_metric"] == "val_pck"
    assert set(validation["per_joint"]) == set(tool_records["joint_set"].names)


def test_training_that_ignores_unlabelled_joints_records_it(tool_run):
    """--unlabelled=ignore end to end: the batches' joint weights reach the compiled loss (a
    model compiled with it trains and validates), config.json records the rule and the final
    model loads with `keras.saving.load_model`."""
    summary = tool_run["summary"]
    assert np.isfinite(summary["history"]["loss"]).all() and summary["steps"] == 1
    assert np.isfinite(summary["validation"]["Mean"])
    assert run_dir.load_config(str(tool_run["run"])).data.unlabelled == "ignore"
    model = keras.saving.load_model(tool_run["run"] / run_dir.FINAL_MODEL_FILE)
    assert model.output_names == ["heatmaps_1"]


def test_joints_of_another_set_than_the_records_is_one_line(tool_records, tmp_path):
    run = tmp_path / "run"
    config = _config(tool_records["train"], tool_records["valid"], run, joints="coco")
    with pytest.raises(ValueError) as error:
        trainer.train(config)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{tool_records['train']} holds records of joint set 'tool' (5 ")
    assert "tip, left_jaw, right_jaw, pivot, handle" in message
    assert "--joints=coco has 'coco' (17 joints: nose," in message
    assert not os.path.exists(run / run_dir.CONFIG_FILE)


def test_validation_records_of_another_set_are_one_line(tool_records, synthetic_records, tmp_path):
    run = tmp_path / "run"
    config = _config(tool_records["train"], synthetic_records["valid"], run)
    with pytest.raises(ValueError) as error:
        trainer.train(config)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{synthetic_records['valid']} holds records of joint set 'synth")
    assert message.endswith("the training run has 'tool' (5 joints: tip, left_jaw, right_jaw, "
                            "pivot, handle)")  # fmt: skip
    assert not os.path.exists(run / run_dir.CONFIG_FILE)


def test_the_run_started_from_init_from_and_said_so(tool_run):
    lines = tool_run["printed"].getvalue().splitlines()
    where = f"--init_from={tool_run['source']}"
    assert f"{where}: 1 of 5 joints carried over from 'mpii': tip (head_top)" in lines
    assert f"{where}: 4 joints freshly initialised: left_jaw, right_jaw, pivot, handle" in lines
    config = run_dir.load_config(str(tool_run["run"]))
    assert config.train.init_from == tool_run["source"]
    assert config.train.joint_map == ("head_top:tip",)
