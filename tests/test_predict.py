"""`python -m stacked_hourglass.predict`: one run in a subprocess, bad inputs in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.serving import client, litert


def test_cli_writes_json_and_png(flip_export):
    root = flip_export["root"]
    out_dir = root / "out"
    image = root / "images" / "person.jpg"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.predict",
            f"--saved_model={flip_export['export_dir']}",
            f"--image={image},{root / 'images' / 'other.png'}",
            "--box=5,10,60,90",
            f"--output_dir={out_dir}",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "head_top" in result.stdout and "2 image(s)" in result.stdout
    assert sorted(os.listdir(out_dir)) == ["other.json", "other.png", "person.json", "person.png"]
    with open(out_dir / "person.json") as f:
        record = json.load(f)
    assert record["image_size"] == {"width": 72, "height": 96}
    (person,) = record["people"]  # one --box: one person per image
    assert person["box"] == [5, 10, 60, 90]
    assert list(person["keypoints"]) == list(joints.MPII.names)
    assert set(person["keypoints"]["r_ankle"]) == {"x", "y", "score"}
    # Same numbers as calling the signature directly.
    serving = client.load_serving_model(flip_export["path"])
    direct = client.predict_image(serving, str(image), np.array([5, 10, 60, 90], np.float32))
    got = np.array([[v["x"], v["y"]] for v in person["keypoints"].values()])
    np.testing.assert_allclose(got, direct.keypoints, atol=1e-4)
    assert (out_dir / "person.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "image, box, message",
    [
        ("notes.txt", None, "notes.txt: image_bytes[0] (13 bytes) is not a JPEG/PNG/BMP/GIF image"),
        ("missing.jpg", None, "missing.jpg: no such file or directory"),
        ("images/person.jpg", "1,2,3", "--box='1,2,3': expected four numbers"),
        ("images/person.jpg", "500,500,600,600", "box[0] = [500 500 600 600] lies outside"),
        ("images/person.jpg", "-1e30,-1e30,1e30,1e30", "longer side must be between 1 pixel"),
    ],
)
def test_cli_bad_input_one_line(flip_export, run_predict, image, box, message):
    root = flip_export["root"]
    args = [
        f"--saved_model={flip_export['path']}",
        f"--image={root / image}",
        f"--output_dir={root / 'bad_out'}",
    ]
    if box:
        args.append(f"--box={box}")
    status, _, err = run_predict(*args)
    assert status != 0
    assert len(err) == 1, err  # no traceback
    assert err[0].startswith("predict: error: ") and message in err[0], err
    assert not os.path.exists(root / "bad_out")


def test_cli_missing_flags_and_model(flip_export, run_predict, tmp_path):
    image = flip_export["root"] / "images" / "person.jpg"
    status, out, err = run_predict(f"--image={image}", f"--output_dir={tmp_path}")
    assert status == 1 and out == "" and err == ["predict: error: --saved_model is required"]
    status, _, err = run_predict(
        f"--saved_model={tmp_path / 'nothing'}", f"--image={image}", f"--output_dir={tmp_path}"
    )
    assert status == 1 and len(err) == 1 and "nothing: not a SavedModel" in err[0]
    assert os.listdir(tmp_path) == []


def test_cli_two_models_is_one_line_before_loading_anything(run_predict, tmp_path):
    status, out, err = run_predict(
        f"--saved_model={tmp_path / 'a'}",
        f"--litert={tmp_path / 'b.tflite'}",
        f"--image={tmp_path / 'c.jpg'}",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert status == 1 and out == ""
    assert err == ["predict: error: give exactly one of --saved_model and --litert"]
    assert os.listdir(tmp_path) == []


@pytest.fixture
def mixed_folder(flip_export, tmp_path):
    """A folder of two good images, a truncated JPEG and a text file named .jpg."""
    images = flip_export["root"] / "images"
    folder = tmp_path / "mixed"
    folder.mkdir()
    jpeg = (images / "person.jpg").read_bytes()
    (folder / "a_person.jpg").write_bytes(jpeg)
    (folder / "b_other.png").write_bytes((images / "other.png").read_bytes())
    (folder / "c_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "d_text.jpg").write_text("not an image at all\n")
    return folder


def _use_litert_stand_in(monkeypatch, flip_export, folder, **metadata):
    """A LiteRT model whose interpreter (optional here) is replaced by the SavedModel's crop-in
    signature, which computes what the converted model does: FOLDER/model.tflite (a placeholder)
    and its FILE.json, the export's metadata overridden by `metadata`. Returns the .tflite path.
    """
    serving = client.load_serving_model(flip_export["path"])
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"")
    metadata = {**serving.metadata, "quantize": "none", "max_pixels": 0, **metadata}
    (folder / "model.json").write_text(json.dumps(metadata))

    def runner(images):
        out = serving.serve_images(images=tf.constant(images, tf.float32))
        return {k: v.numpy() for k, v in out.items()}

    monkeypatch.setattr(litert, "signature_runner", lambda path, num_threads=None: runner)
    return str(folder / "model.tflite")


@pytest.mark.parametrize("source", ["saved_model", "litert"])
def test_folder_with_bad_files_writes_the_good_ones_and_names_the_bad(
    flip_export, run_predict, mixed_folder, tmp_path, monkeypatch, source
):
    if source == "litert":
        stand_in = _use_litert_stand_in(monkeypatch, flip_export, tmp_path / "litert")
        model = f"--litert={stand_in}"
    else:
        model = f"--saved_model={flip_export['path']}"
    out_dir = tmp_path / "out"
    status, out, err = run_predict(model, f"--image={mixed_folder}", f"--output_dir={out_dir}")
    assert status == 1
    assert sorted(os.listdir(out_dir)) == [
        "a_person.json", "a_person.png", "b_other.json", "b_other.png"
    ]  # fmt: skip
    with open(out_dir / "a_person.json") as f:
        (person,) = json.load(f)["people"]  # no boxes: the whole image is one person
    assert list(person["keypoints"]) == list(joints.MPII.names)
    assert "2 image(s) -> " in out and "2 failed" in out
    # One line per bad file, naming it and the reason; no traceback.
    assert len(err) == 2, err
    truncated, text = err
    assert truncated.startswith(f"predict: error: {mixed_folder / 'c_truncated.jpg'}: "), err
    assert text.startswith(f"predict: error: {mixed_folder / 'd_text.jpg'}: "), err
    if source == "litert":
        assert "image cannot be decoded" in truncated, err
    else:
        assert "is a truncated JPEG" in truncated, err
    assert "is not a JPEG" in text, err


def test_litert_refuses_an_image_above_the_pixel_limit_before_decoding(
    flip_export, run_predict, tmp_path, monkeypatch
):
    stand_in = _use_litert_stand_in(monkeypatch, flip_export, tmp_path / "litert", max_pixels=1000)
    image = flip_export["root"] / "images" / "person.jpg"  # 72 x 96 = 6912 pixels
    status, _, err = run_predict(
        f"--litert={stand_in}", f"--image={image}", f"--output_dir={tmp_path / 'out'}"
    )
    assert status == 1 and len(err) == 1, err
    assert "72x96 (width x height) = 6912 pixels, above the limit max_pixels = 1000" in err[0]
    assert not os.path.exists(tmp_path / "out")


def test_output_dir_that_is_a_file_is_one_line_before_any_image(flip_export, run_predict, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    status, out, err = run_predict(
        f"--saved_model={flip_export['path']}",
        f"--image={flip_export['root'] / 'images'}",
        f"--output_dir={target}",
    )
    assert status == 1 and out == ""
    assert err == [f"predict: error: --output_dir={target}: not a directory"]
