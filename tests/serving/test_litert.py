"""LiteRT export: the converted crop-in model against Keras per quantisation mode, predict and
evaluate with --litert.

Tolerances (measured on these random-weight 1-stack, 16-feature, 64x64 models; the heatmap peaks
are weak, so a small change can move an argmax by one heatmap pixel = 4 crop pixels):

  none          heatmaps |diff| <= 1e-5 (measured ~6e-8), keypoints identical
  fp16          heatmaps |diff| <= 1e-3 (measured ~6e-5), keypoints identical
  dynamic_int8  heatmaps |diff| <= 2e-2 (measured ~1e-3); keypoints: >= 75% within 1 heatmap px
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from stacked_hourglass import evaluate, export, joints, predict, run_dir
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.model import inference
from stacked_hourglass.serving import client, exporter, litert

pytest.importorskip("ai_edge_litert.interpreter")

TOLERANCE = {"none": 1e-5, "fp16": 1e-3, "dynamic_int8": 2e-2}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, make_model_dir):
    """A 1-stack MPII model_dir and its float LiteRT conversion, by the command line."""
    root = tmp_path_factory.mktemp("litert")
    model_dir = str(root / "run")
    model = make_model_dir(model_dir, num_stacks=1, seed=5)
    output = str(root / "none.tflite")
    assert export.main(["--format=litert", f"--model_dir={model_dir}", f"--output={output}"]) == 0
    return {"root": root, "model_dir": model_dir, "model": model, "files": {"none": output}}


@pytest.fixture(scope="module")
def quantized(converted):
    """`converted` with the quantized conversions too (~7 s each: the large step's tests)."""
    files = dict(converted["files"])
    for mode in litert.QUANTIZE_MODES:
        if mode != "none":
            files[mode] = str(converted["root"] / f"{mode}.tflite")
            litert.convert_from_model_dir(converted["model_dir"], files[mode], quantize=mode)
    return {**converted, "files": files}


def test_metadata(converted):
    model = litert.LiteRTModel(converted["files"]["none"])
    assert model.metadata["quantize"] == "none" and model.metadata["format"] == "litert"
    assert model.metadata["decoder"] == "quarter" and model.metadata["input_size"] == 64
    assert model.metadata["joint_names"] == list(joints.MPII.names)


@pytest.mark.large
def test_sizes_and_metadata(quantized):
    sizes = {m: os.path.getsize(p) for m, p in quantized["files"].items()}
    assert sizes["fp16"] < 0.7 * sizes["none"] and sizes["dynamic_int8"] < 0.5 * sizes["none"]
    model = litert.LiteRTModel(quantized["files"]["fp16"])
    assert model.metadata["quantize"] == "fp16" and model.metadata["format"] == "litert"
    assert model.metadata["decoder"] == "quarter" and model.metadata["input_size"] == 64
    assert model.metadata["joint_names"] == list(joints.MPII.names)


@pytest.mark.parametrize(
    "mode",
    [m if m == "none" else pytest.param(m, marks=pytest.mark.large) for m in litert.QUANTIZE_MODES],
)
def test_litert_matches_keras(request, random_image, mode):
    converted = request.getfixturevalue("converted" if mode == "none" else "quantized")
    crops = np.stack([random_image((64, 64), seed) for seed in (11, 12, 13)]) / 255.0
    crops = crops.astype(np.float32)
    expected = inference.predict_heatmaps(converted["model"], crops).numpy()
    keypoints, scores = HeatmapCodec.for_model(64).decode(expected)
    out = litert.LiteRTModel(converted["files"][mode]).run(crops)
    assert out["heatmaps"].shape == (3, 16, 16, 16) and out["keypoints"].shape == (3, 16, 2)
    np.testing.assert_allclose(out["heatmaps"], expected, atol=TOLERANCE[mode])
    np.testing.assert_allclose(out["scores"], scores.numpy(), atol=TOLERANCE[mode])
    distance = np.linalg.norm(out["keypoints"] - keypoints.numpy(), axis=-1)
    if mode == "dynamic_int8":
        assert np.mean(distance <= 4.0 + 1e-3) >= 0.75, distance
    else:
        np.testing.assert_allclose(out["keypoints"], keypoints.numpy(), atol=1e-3)


def test_litert_rejects_bad_crops(converted):
    model = litert.LiteRTModel(converted["files"]["none"])
    with pytest.raises(ValueError, match=r"images has shape \(1, 32, 32, 3\)"):
        model.run(np.zeros([1, 32, 32, 3], np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        model.run(np.full([1, 64, 64, 3], np.nan, np.float32))


def test_predict_litert_matches_saved_model(converted, image_bytes, capsys):
    root = converted["root"]
    image = root / "person.jpg"
    image.write_bytes(image_bytes((96, 72), 1))
    export_path = exporter.export_model(
        run_dir.load_model(converted["model_dir"]), joints.MPII, 64, str(root / "export")
    )
    serving = client.load_serving_model(export_path)
    box = np.array([5, 10, 60, 90], np.float32)
    expected = client.predict_image(serving, str(image), box)
    model = litert.LiteRTModel(converted["files"]["none"])
    got = client.predict_on_host(model, str(image), box)
    np.testing.assert_array_equal(got.box, expected.box)
    np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=0.05)
    whole = client.predict_on_host(model, str(image))
    np.testing.assert_array_equal(whole.box, [-0.5, -0.5, 71.5, 95.5])

    status = predict.main(
        [
            f"--litert={converted['files']['none']}",
            f"--image={image}",
            "--box=5,10,60,90",
            f"--output_dir={root / 'out'}",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "(LiteRT, quantize=none): decoder=quarter, flip_test=False" in out
    assert sorted(os.listdir(root / "out")) == ["person.json", "person.png"]
    status = predict.main(
        [
            f"--litert={converted['files']['none']}",
            f"--image={image}",
            "--box=500,500,600,600",
            f"--output_dir={root / 'bad'}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and "box[0] = [500 500 600 600] lies outside" in err[0]


# A second LiteRT conversion, ~13 s: run by .ci/run; the default run keeps LiteRT against Keras
# and through predict, and evaluate's table of a SavedModel beside its model directory.
@pytest.mark.large
def test_evaluate_litert_next_to_the_float_model(
    synthetic_model, synthetic_records, tmp_path, capsys
):
    tflite = str(tmp_path / "synthetic.tflite")
    litert.convert_from_model_dir(synthetic_model["model_dir"], tflite)
    status = evaluate.main(
        [
            f"--litert={tflite}",
            f"--data={synthetic_records['valid']}",
            f"--model_dir={synthetic_model['model_dir']}",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    float_row, litert_row = lines[header + 1].split(), lines[header + 2].split()
    assert float_row[:2] == ["float", "(model_dir)"] and litert_row[:2] == ["LiteRT", "none"]
    assert float_row[2:] == litert_row[2:]  # float32 conversion: the same PCKh


def test_evaluate_decoder_flag(synthetic_model, synthetic_records, capsys):
    status = evaluate.main(
        [
            f"--saved_model={synthetic_model['plain']}",
            f"--data={synthetic_records['valid']}",
            "--decoder=dark",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1
    assert "was exported with decoder=quarter; evaluate it without --decoder" in err[0]
    status = evaluate.main(
        [
            f"--model_dir={synthetic_model['model_dir']}",
            f"--data={synthetic_records['valid']}",
            "--decoder=dark",
        ]
    )
    assert status == 0, capsys.readouterr().err


def test_litert_people_equal_single_box_calls(converted, image_bytes):
    """Several boxes of one image: one decode, N host crops, one `run`; each person's keypoints
    are those of `predict_image` with its box (the same crop, the interpreter one crop at a
    time either way)."""
    model = litert.LiteRTModel(converted["files"]["none"])
    data = image_bytes((96, 120), 4)
    boxes = np.array([[5, 10, 60, 90], [50, 0, 119, 95], [0, 0, 0, 0]], np.float32)
    people = model.predict_people(data, boxes)
    assert people.keypoints.shape == (3, 16, 2) and people.image_size == (96, 120)
    path = converted["root"] / "people.jpg"
    path.write_bytes(data)
    for i, box in enumerate(boxes):
        single = model.predict_image(str(path), box)
        np.testing.assert_array_equal(people.boxes[i], single.box)
        np.testing.assert_allclose(people.keypoints[i], single.keypoints, rtol=0, atol=1e-4)
        np.testing.assert_allclose(people.scores[i], single.scores, rtol=0, atol=1e-6)
