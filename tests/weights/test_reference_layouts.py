"""Reference state-dict layouts mapped onto our Keras layers (weights.reference_layouts).

Synthetic state dicts here are generated the way the reference modules register their
parameters (princeton-vl/pytorch_stacked_hourglass models/layers.py + posenet.py, bearpaw/
pytorch-pose pose/models/hourglass.py); `test_generators_reproduce_the_reference_checkpoints`
checks them against the checkpoints PyTorch wrote, so that other sizes can be trusted too.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from stacked_hourglass.weights import reference_layouts
from stacked_hourglass.weights.reference_layouts import (
    detect_format,
    infer_architecture,
    to_keras_layers,
)
from stacked_hourglass.weights.torch_pickle import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
)
from stacked_hourglass.weights.torch_pickle_writer import save_checkpoint

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "reference-weights"
FIXTURES = {"princeton": "princeton_2hg_f64.pt", "bearpaw": "bearpaw_hg_s2_b1.pth.tar"}
FIXTURE_ARCHITECTURES = {
    "princeton": {
        "num_stacks": 2,
        "num_features": 64,
        "depth": 4,
        "num_joints": 16,
        "num_modules": 1,
        "stem_features": (64, 128, 128),
    },
    "bearpaw": {
        "num_stacks": 2,
        "num_features": 256,
        "depth": 4,
        "num_joints": 16,
        "num_modules": 1,
        "stem_features": (64, 128, 256),
    },
}


def reference_checkpoint(fmt: str) -> Path:
    path = REFERENCE / FIXTURES[fmt]
    if not path.is_file():
        pytest.skip(f"reference checkpoint {path} is absent (shared/data/reference-weights)")
    return path


def reference_state(fmt: str) -> dict:
    path = reference_checkpoint(fmt)
    return extract_state_dict(load_checkpoint(path), path)


class _Params:
    """Collects parameters in registration order, as `module.state_dict()` lists them."""

    def __init__(self, prefix: str, seed: int = 0):
        self.prefix = prefix
        self.state = {}
        self.rng = np.random.default_rng(seed)

    def conv(self, name, out, inp, k=1):
        self.state[f"{self.prefix}{name}weight"] = self.rng.standard_normal(
            (out, inp, k, k), np.float32
        )
        self.state[f"{self.prefix}{name}bias"] = self.rng.standard_normal(out, np.float32)

    def bn(self, name, c):
        for part in ("weight", "bias", "running_mean"):
            self.state[f"{self.prefix}{name}{part}"] = self.rng.standard_normal(c, np.float32)
        self.state[f"{self.prefix}{name}running_var"] = self.rng.uniform(0.5, 2, c).astype(
            np.float32
        )
        self.state[f"{self.prefix}{name}num_batches_tracked"] = np.array(7, np.int64)


def princeton_state(nstack=2, inp_dim=64, oup_dim=16, depth=4, seed=0) -> dict:
    """state_dict() of DataParallel(PoseNet(nstack, inp_dim, oup_dim)) inside the Trainer."""
    p = _Params("model.module.", seed)

    def residual(name, inp, out):  # Residual: bn1, conv1, bn2, conv2, bn3, conv3, skip_layer
        p.bn(name + "bn1.", inp)
        p.conv(name + "conv1.conv.", out // 2, inp)
        p.bn(name + "bn2.", out // 2)
        p.conv(name + "conv2.conv.", out // 2, out // 2, 3)
        p.bn(name + "bn3.", out // 2)
        p.conv(name + "conv3.conv.", out, out // 2)
        p.conv(name + "skip_layer.conv.", out, inp)  # registered even when unused

    def hourglass(name, n, f):
        residual(name + "up1.", f, f)
        residual(name + "low1.", f, f)
        if n > 1:
            hourglass(name + "low2.", n - 1, f)
        else:
            residual(name + "low2.", f, f)
        residual(name + "low3.", f, f)

    p.conv("pre.0.conv.", 64, 3, 7)
    p.bn("pre.0.bn.", 64)
    residual("pre.1.", 64, 128)
    residual("pre.3.", 128, 128)
    residual("pre.4.", 128, inp_dim)
    for i in range(nstack):
        hourglass(f"hgs.{i}.0.", depth, inp_dim)
    for i in range(nstack):
        residual(f"features.{i}.0.", inp_dim, inp_dim)
        p.conv(f"features.{i}.1.conv.", inp_dim, inp_dim)
        p.bn(f"features.{i}.1.bn.", inp_dim)
    for i in range(nstack):
        p.conv(f"outs.{i}.conv.", oup_dim, inp_dim)
    for i in range(nstack - 1):
        p.conv(f"merge_features.{i}.conv.conv.", inp_dim, inp_dim)
    for i in range(nstack - 1):
        p.conv(f"merge_preds.{i}.conv.conv.", inp_dim, oup_dim)
    return p.state


def bearpaw_state(
    num_stacks=2, num_blocks=1, num_classes=16, num_feats=128, depth=4, seed=0
) -> dict:
    """state_dict() of DataParallel(HourglassNet(Bottleneck, ...)) (num_feats is fixed at 128
    in the reference; other values stand for a modified copy)."""
    p = _Params("module.", seed)
    inplanes = 64

    def bottleneck(name, inp, planes, downsample):
        p.bn(name + "bn1.", inp)
        p.conv(name + "conv1.", planes, inp)
        p.bn(name + "bn2.", planes)
        p.conv(name + "conv2.", planes, planes, 3)
        p.bn(name + "bn3.", planes)
        p.conv(name + "conv3.", planes * 2, planes)
        if downsample:
            p.conv(name + "downsample.0.", planes * 2, inp)

    def make_residual(name, planes, blocks):
        nonlocal inplanes
        bottleneck(name + "0.", inplanes, planes, inplanes != planes * 2)
        inplanes = planes * 2
        for b in range(1, blocks):
            bottleneck(f"{name}{b}.", inplanes, planes, False)

    p.conv("conv1.", 64, 3, 7)
    p.bn("bn1.", 64)
    make_residual("layer1.", inplanes, 1)
    make_residual("layer2.", inplanes, 1)
    make_residual("layer3.", num_feats, 1)
    ch = num_feats * 2
    for i in range(num_stacks):
        for level in range(depth):
            for j in range(4 if level == 0 else 3):
                for b in range(num_blocks):
                    bottleneck(f"hg.{i}.hg.{level}.{j}.{b}.", ch, num_feats, False)
    for i in range(num_stacks):
        make_residual(f"res.{i}.", num_feats, num_blocks)
    for i in range(num_stacks):
        p.conv(f"fc.{i}.0.", ch, ch)
        p.bn(f"fc.{i}.1.", ch)
    for i in range(num_stacks):
        p.conv(f"score.{i}.", num_classes, ch)
    for i in range(num_stacks - 1):
        p.conv(f"fc_.{i}.", ch, ch)
    for i in range(num_stacks - 1):
        p.conv(f"score_.{i}.", ch, num_classes)
    return p.state


GENERATORS = {"princeton": princeton_state, "bearpaw": bearpaw_state}


def shapes(state) -> dict:
    return {key: np.shape(value) for key, value in state.items()}


@pytest.mark.parametrize("fmt", ["princeton", "bearpaw"])
def test_generators_reproduce_the_reference_checkpoints(fmt):
    path = reference_checkpoint(fmt)
    written = load_checkpoint(path)["state_dict"]
    generated = GENERATORS[fmt]()
    assert list(generated) == list(written)
    assert shapes(generated) == shapes(written)


@pytest.mark.parametrize("fmt", ["princeton", "bearpaw"])
def test_infer_architecture_of_the_reference_checkpoints(fmt):
    state = reference_state(fmt)
    assert detect_format(state) == fmt
    assert infer_architecture(fmt, state) == FIXTURE_ARCHITECTURES[fmt]


@pytest.mark.parametrize("fmt, num_unused", [("princeton", 58), ("bearpaw", 0)])
def test_every_reference_tensor_is_mapped_or_unused(fmt, num_unused):
    state = reference_state(fmt)
    layers, unused = to_keras_layers(fmt, state)
    assert len(unused) == num_unused
    assert all(".skip_layer.conv." in key for key in unused)
    assert len(set(unused)) == len(unused) and set(unused) <= set(state)
    mapped = sum(len(weights) for weights in layers.values())
    assert mapped + len(unused) == len(state)
    # 1 stem conv + BN, 3 stem residuals, per stack 14 residuals + feat conv/BN + heatmap conv,
    # merges between stacks; a residual has 6 layers (+ skip where the channel count changes).
    assert len(layers) == 198
    for weights in layers.values():
        assert all(w.dtype == np.float32 for w in weights)


def test_princeton_tensors_land_in_the_right_layers():
    state = reference_state("princeton")
    layers, unused = to_keras_layers("princeton", state)
    kernel = state["pre.0.conv.weight"]
    np.testing.assert_array_equal(layers["stem_conv"][0], kernel.transpose(2, 3, 1, 0))
    assert layers["stem_conv"][0].shape == (7, 7, 3, 64)
    np.testing.assert_array_equal(layers["stem_conv"][1], state["pre.0.conv.bias"])
    for i, part in enumerate(["weight", "bias", "running_mean", "running_var"]):
        np.testing.assert_array_equal(layers["stem_bn"][i], state[f"pre.0.bn.{part}"])
    pairs = {
        "stem_res1_skip": "pre.1.skip_layer.conv.",
        "stem_res3_skip": "pre.4.skip_layer.conv.",
        "hg1_d3_d2_d1_low2_conv2": "hgs.0.0.low2.low2.low2.low2.conv2.conv.",
        "hg2_d3_up1_conv1": "hgs.1.0.low2.up1.conv1.conv.",
        "hg2_low3_conv3": "hgs.1.0.low3.conv3.conv.",
        "stack2_res_conv1": "features.1.0.conv1.conv.",
        "stack1_feat_conv": "features.0.1.conv.",
        "stack2_heatmap_conv": "outs.1.conv.",
        "stack1_merge_features": "merge_features.0.conv.conv.",
        "stack1_merge_heatmaps": "merge_preds.0.conv.conv.",
    }
    for layer, prefix in pairs.items():
        np.testing.assert_array_equal(
            layers[layer][0], state[prefix + "weight"].transpose(2, 3, 1, 0), err_msg=layer
        )
    np.testing.assert_array_equal(layers["stack1_feat_bn"][3], state["features.0.1.bn.running_var"])
    assert "stem_res2_skip" not in layers and "pre.3.skip_layer.conv.weight" in unused
    assert "stack2_merge_features" not in layers


def test_bearpaw_tensors_land_in_the_right_layers():
    state = reference_state("bearpaw")
    layers, _ = to_keras_layers("bearpaw", state)
    pairs = {
        "stem_conv": "conv1.",
        "stem_res1_skip": "layer1.0.downsample.0.",
        "stem_res2_skip": "layer2.0.downsample.0.",
        "stem_res3_conv1": "layer3.0.conv1.",
        "hg1_up1_conv1": "hg.0.hg.3.0.0.conv1.",
        "hg1_low1_conv2": "hg.0.hg.3.1.0.conv2.",
        "hg1_low3_conv3": "hg.0.hg.3.2.0.conv3.",
        "hg2_d3_d2_up1_conv1": "hg.1.hg.1.0.0.conv1.",
        "hg2_d3_d2_d1_low2_conv2": "hg.1.hg.0.3.0.conv2.",
        "hg2_d3_d2_d1_low3_conv2": "hg.1.hg.0.2.0.conv2.",
        "stack1_res_conv3": "res.0.0.conv3.",
        "stack2_feat_conv": "fc.1.0.",
        "stack1_heatmap_conv": "score.0.",
        "stack1_merge_features": "fc_.0.",
        "stack1_merge_heatmaps": "score_.0.",
    }
    for layer, prefix in pairs.items():
        np.testing.assert_array_equal(
            layers[layer][0], state[prefix + "weight"].transpose(2, 3, 1, 0), err_msg=layer
        )
        np.testing.assert_array_equal(layers[layer][1], state[prefix + "bias"], err_msg=layer)
    np.testing.assert_array_equal(layers["stack2_feat_bn"][2], state["fc.1.1.running_mean"])
    np.testing.assert_array_equal(layers["hg1_up1_bn1"][0], state["hg.0.hg.3.0.0.bn1.weight"])
    assert "stem_res3_skip" not in layers  # 256 -> 256: bearpaw has no downsample there


SYNTHETIC = [
    (
        "bearpaw",
        dict(num_stacks=3, num_blocks=2, num_classes=11, num_feats=16),
        {"num_stacks": 3, "num_features": 32, "depth": 4, "num_joints": 11, "num_modules": 2},
        (64, 128, 256),
        "zip",
    ),
    (
        "bearpaw",
        dict(num_stacks=1, num_blocks=3, num_classes=16, num_feats=128, depth=2),
        {"num_stacks": 1, "num_features": 256, "depth": 2, "num_joints": 16, "num_modules": 3},
        (64, 128, 256),
        "legacy",
    ),
    (
        "princeton",
        dict(nstack=3, inp_dim=32, oup_dim=11, depth=3),
        {"num_stacks": 3, "num_features": 32, "depth": 3, "num_joints": 11, "num_modules": 1},
        (64, 128, 128),
        "legacy",
    ),
    (
        "princeton",
        dict(nstack=8, inp_dim=256, oup_dim=16),
        {"num_stacks": 8, "num_features": 256, "depth": 4, "num_joints": 16, "num_modules": 1},
        (64, 128, 128),
        "zip",
    ),
]


@pytest.mark.parametrize("fmt, kwargs, expected, stem, format", SYNTHETIC)
def test_synthetic_checkpoints_round_trip(tmp_path, fmt, kwargs, expected, stem, format):
    state = GENERATORS[fmt](**kwargs)
    path = tmp_path / "synthetic.pth.tar"
    save_checkpoint(path, {"epoch": 1, "state_dict": state, "optimizer": {}}, format=format)
    loaded = extract_state_dict(load_checkpoint(path), path)
    assert detect_format(loaded) == fmt
    assert infer_architecture(fmt, loaded) == {**expected, "stem_features": stem}
    layers, unused = to_keras_layers(fmt, loaded, path)
    assert sum(len(w) for w in layers.values()) + len(unused) == len(loaded)
    f = expected["num_features"]
    assert layers["hg1_up1_conv2"][0].shape == (3, 3, f // 2, f // 2)
    last = expected["num_stacks"]
    assert layers[f"stack{last}_heatmap_conv"][0].shape == (1, 1, f, expected["num_joints"])
    modules = expected["num_modules"]
    if modules > 1:
        assert f"stack{last}_res_m{modules}_conv3" in layers
        assert f"hg{last}_up1_m{modules}_bn1" in layers
        assert f"hg{last}_up1_m{modules + 1}_bn1" not in layers


def test_missing_tensor_is_named():
    state = extract_state_dict({"state_dict": princeton_state(inp_dim=32)})
    del state["hgs.1.0.low2.low1.conv2.conv.bias"]
    with pytest.raises(CheckpointError, match=r"missing tensor hgs\.1\.0\.low2\.low1\.conv2") as e:
        to_keras_layers("princeton", state, "some.pt")
    assert "hg2_d3_low1_conv2" in str(e.value) and str(e.value).startswith("some.pt: ")


def test_wrong_shape_is_named_with_both_shapes():
    state = extract_state_dict({"state_dict": bearpaw_state(num_feats=16)})
    state["hg.0.hg.2.1.0.conv2.weight"] = np.zeros((16, 16, 5, 5), np.float32)
    with pytest.raises(CheckpointError) as e:
        to_keras_layers("bearpaw", state)
    message = str(e.value)
    assert "hg.0.hg.2.1.0.conv2.weight has shape (16, 16, 5, 5), expected (16, 16, 3, 3)" in message


def test_first_misfit_in_build_order_is_reported():
    # princeton's `increase` widens the lower branches: our model cannot hold that.
    state = extract_state_dict({"state_dict": princeton_state(inp_dim=32)})
    state["hgs.0.0.low1.conv3.conv.weight"] = np.zeros((48, 16, 1, 1), np.float32)
    state["hgs.1.0.low1.conv3.conv.weight"] = np.zeros((48, 16, 1, 1), np.float32)
    with pytest.raises(CheckpointError, match=r"hgs\.0\.0\.low1\.conv3\.conv\.weight has shape"):
        to_keras_layers("princeton", state)


def test_tensor_without_a_place_is_named():
    state = extract_state_dict({"state_dict": bearpaw_state(num_feats=16)})
    state["extra_head.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"tensor extra_head\.weight of shape \(3, 3\)"):
        to_keras_layers("bearpaw", state)


def test_integer_weights_are_refused():
    state = extract_state_dict({"state_dict": princeton_state(inp_dim=32)})
    state["outs.0.conv.bias"] = np.zeros(16, np.int64)
    with pytest.raises(CheckpointError, match=r"outs\.0\.conv\.bias holds int64"):
        to_keras_layers("princeton", state)


def test_wrong_format_and_foreign_state_dicts():
    princeton = extract_state_dict({"state_dict": princeton_state(inp_dim=32)})
    with pytest.raises(CheckpointError, match="not a bearpaw"):
        infer_architecture("bearpaw", princeton)
    with pytest.raises(CheckpointError, match="not a checkpoint of a known"):
        detect_format({"fc.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="fmt must be one of"):
        to_keras_layers("hrnet", princeton)
    assert reference_layouts.FORMATS == ("princeton", "bearpaw")


def _model_config_or_skip(**arch):
    from stacked_hourglass.model import ModelConfig

    if "stem_features" not in {field.name for field in dataclasses.fields(ModelConfig)}:
        pytest.skip("ModelConfig has no stem_features field yet")
    return ModelConfig(input_size=64, **arch)


@pytest.mark.parametrize(
    "fmt, state",
    [
        ("princeton", lambda: princeton_state(nstack=3, inp_dim=32, oup_dim=11, depth=3)),
        ("bearpaw", lambda: bearpaw_state(num_stacks=2, num_blocks=2, num_feats=16, depth=3)),
    ],
)
def test_layer_names_and_shapes_match_the_keras_model(fmt, state):
    from stacked_hourglass.model import build_model

    state = extract_state_dict({"state_dict": state()})
    arch = infer_architecture(fmt, state)
    model = build_model(_model_config_or_skip(**arch))
    layers, _ = to_keras_layers(fmt, state)
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert weighted == set(layers)
    for name, weights in layers.items():
        expected = [tuple(w.shape) for w in model.get_layer(name).get_weights()]
        assert [w.shape for w in weights] == expected, name


@pytest.mark.parametrize("fmt", ["princeton", "bearpaw"])
def test_imported_network_computes_the_reference_heatmaps(fmt):
    from stacked_hourglass.model import build_model

    path = reference_checkpoint(fmt)
    state = extract_state_dict(load_checkpoint(path), path)
    config = dataclasses.replace(
        _model_config_or_skip(**infer_architecture(fmt, state)), input_size=256
    )
    model = build_model(config)
    layers, _ = to_keras_layers(fmt, state, path)
    for name, weights in layers.items():
        model.get_layer(name).set_weights(weights)
    io = np.load(str(path) + ".io.npz")
    image = io["input"]
    if fmt == "bearpaw":  # NCHW, already mean-subtracted: feed it as the network sees it
        image = image.transpose(0, 2, 3, 1)
    outputs = model(image, training=False)
    for stack in range(1, config.num_stacks + 1):
        expected = io[f"heatmaps_{stack}"].transpose(0, 2, 3, 1)
        np.testing.assert_allclose(
            np.asarray(outputs[f"heatmaps_{stack}"]), expected, atol=2e-5, rtol=0
        )
