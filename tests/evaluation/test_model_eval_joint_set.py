"""`evaluate --model_dir=M --data=RECORDS` needs no joint set on the command line: the model's is
used, and records of another joint set (their manifest) are one line naming both."""

from __future__ import annotations

import pytest

from stacked_hourglass.evaluation import model_eval

OPTIONS = dict(flip_test=False, batch_size=4, head="head_top", threshold=None, output_dir=None)


@pytest.fixture(scope="module")
def tool_model_dir(make_model_dir, tool_records, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("tool_model") / "run")
    make_model_dir(run, num_stacks=1, dataset="coco", joint_set=tool_records["joint_set"])
    return run


def test_a_custom_joint_set_model_scores_its_records(tool_model_dir, tool_records):
    figures = model_eval.run_model_evaluation(
        "model_dir", tool_model_dir, data=tool_records["valid"], **OPTIONS
    )
    table = figures["table"]
    assert table["dataset"] == "tool" and table["num_people"] == 4
    assert list(table["per_joint"]) == list(tool_records["joint_set"].names)


def test_records_of_another_joint_set_than_the_model_are_one_line(
    tool_model_dir, synthetic_records
):
    data = synthetic_records["valid"]
    with pytest.raises(ValueError) as error:
        model_eval.run_model_evaluation("model_dir", tool_model_dir, data=data, **OPTIONS)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{data} holds records of joint set 'synthetic' (16 joints: ")
    assert message.endswith(
        f"the model {tool_model_dir} has 'tool' (5 joints: tip, left_jaw, right_jaw, pivot, handle)"
    )
