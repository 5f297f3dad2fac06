"""The README's TF Serving requests, decoded the way TF Serving does, against the SavedModel.

No TF Serving binary here: the REST body is built exactly as the README shows, turned into
tensors with TF Serving's rules for the row ("instances") format (`{"b64": ...}` → bytes, one row
per instance → the batch dimension), the signature is called, and the response is assembled as
TF Serving's row format does (`{"predictions": [one object per instance]}`). The gRPC request is a
real `tensorflow_serving.apis.predict_pb2.PredictRequest` whose TensorProtos are made and read
with `tf.make_tensor_proto` / `tf.make_ndarray`, as a gRPC client and the server do.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.serving import layout

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")


@pytest.fixture(scope="module")
def signatures(flip_export):
    loaded = tf.saved_model.load(flip_export["path"])
    return loaded, loaded.signatures


def rest_body(signature_name, images, boxes=None) -> str:
    """The README's request body."""
    instances = []
    for i, data in enumerate(images):
        instance = {"image_bytes": {"b64": base64.b64encode(data).decode()}}
        if boxes is not None:
            instance["box"] = [float(v) for v in boxes[i]]
        instances.append(instance)
    return json.dumps({"signature_name": signature_name, "instances": instances})


def decode_rest(body: str, signature) -> dict:
    """TF Serving's row-format decoding: one tensor per input, instances stacked on axis 0."""
    request = json.loads(body)
    rows = request["instances"]
    inputs = {}
    for name, spec in signature.structured_input_signature[1].items():
        values = [row[name] for row in rows]
        if spec.dtype == tf.string:
            values = [base64.b64decode(v["b64"]) for v in values]
        inputs[name] = tf.constant(values, spec.dtype)
    return inputs


def encode_rest(outputs: dict) -> str:
    """TF Serving's row-format response: one object per instance with every output."""
    batch = next(iter(outputs.values())).shape[0]
    predictions = [{k: v.numpy()[i].tolist() for k, v in outputs.items()} for i in range(batch)]
    return json.dumps({"predictions": predictions})


def test_rest_bytes_only_request(signatures, image_bytes):
    _, sigs = signatures
    images = [image_bytes((96, 72), 1), image_bytes((50, 80), 2, fmt="png")]
    body = rest_body(layout.SERVING_DEFAULT, images)
    assert json.loads(body)["instances"][0].keys() == {"image_bytes"}
    signature = sigs[json.loads(body)["signature_name"]]
    assert set(signature.structured_input_signature[1]) == {"image_bytes"}
    response = json.loads(encode_rest(signature(**decode_rest(body, signature))))
    assert len(response["predictions"]) == 2
    first = response["predictions"][0]
    assert set(first) == {"keypoints", "scores", "image_size", "box"}
    assert np.shape(first["keypoints"]) == (16, 2) and np.shape(first["scores"]) == (16,)
    assert first["image_size"] == [96, 72]
    assert first["box"] == [-0.5, -0.5, 71.5, 95.5]
    assert response["predictions"][1]["image_size"] == [50, 80]


def test_rest_box_request_and_grpc_round_trip(signatures, image_bytes):
    _, sigs = signatures
    images = [image_bytes((96, 72), 1), image_bytes((96, 72), 3)]
    boxes = [[5, 10, 60, 90], [0, 0, 0, 0]]
    body = rest_body(layout.SERVING_BOX, images, boxes)
    signature = sigs[layout.SERVING_BOX]
    outputs = signature(**decode_rest(body, signature))
    response = json.loads(encode_rest(outputs))
    assert [p["box"] for p in response["predictions"]] == [
        [5.0, 10.0, 60.0, 90.0],
        [-0.5, -0.5, 71.5, 95.5],
    ]

    # gRPC: the same inputs as TensorProtos in a PredictRequest, serialised and parsed back.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hourglass"
    request.model_spec.signature_name = layout.SERVING_BOX
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
    request.inputs["box"].CopyFrom(tf.make_tensor_proto(np.asarray(boxes, np.float32)))
    received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert received.model_spec.signature_name == layout.SERVING_BOX
    grpc_inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in received.inputs.items()}
    grpc_outputs = sigs[received.model_spec.signature_name](**grpc_inputs)
    response_pb = predict_pb2.PredictResponse()
    for name, value in grpc_outputs.items():
        response_pb.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    parsed = predict_pb2.PredictResponse.FromString(response_pb.SerializeToString())
    assert set(parsed.outputs) == set(outputs)
    for name, value in outputs.items():
        np.testing.assert_array_equal(tf.make_ndarray(parsed.outputs[name]), value.numpy())


def test_rest_bad_instance_names_the_input(signatures):
    _, sigs = signatures
    body = rest_body(layout.SERVING_DEFAULT, [b"hello, world"])
    signature = sigs[layout.SERVING_DEFAULT]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] \(12 bytes\)"):
        signature(**decode_rest(body, signature))


def decode_columnar(body: str, signature) -> dict:
    """TF Serving's columnar ("inputs") decoding: each named input is one tensor as written
    (`{"b64": ...}` → a string scalar), so inputs of different batch sizes can be sent."""
    request = json.loads(body)
    inputs = {}
    for name, spec in signature.structured_input_signature[1].items():
        value = request["inputs"][name]
        if spec.dtype == tf.string:
            value = base64.b64decode(value["b64"])
        inputs[name] = tf.constant(value, spec.dtype)
    return inputs


def test_rest_people_request(signatures, image_bytes):
    """`serving_people`: one image and N boxes in the columnar format (the row format batches
    every input on axis 0, which a scalar image and [N, 4] boxes cannot share)."""
    _, sigs = signatures
    data = image_bytes((96, 72), 1)
    boxes = [[5.0, 10.0, 60.0, 90.0], [0.0, 0.0, 0.0, 0.0]]
    body = json.dumps(
        {
            "signature_name": layout.SERVING_PEOPLE,
            "inputs": {"image_bytes": {"b64": base64.b64encode(data).decode()}, "boxes": boxes},
        }
    )
    signature = sigs[json.loads(body)["signature_name"]]
    assert set(signature.structured_input_signature[1]) == {"image_bytes", "boxes"}
    outputs = signature(**decode_columnar(body, signature))
    response = json.loads(
        json.dumps({"outputs": {k: v.numpy().tolist() for k, v in outputs.items()}})
    )
    people = response["outputs"]
    assert set(people) == {"keypoints", "scores", "image_size", "boxes"}
    assert np.shape(people["keypoints"]) == (2, 16, 2) and np.shape(people["scores"]) == (2, 16)
    assert people["image_size"] == [96, 72]
    assert people["boxes"] == [[5.0, 10.0, 60.0, 90.0], [-0.5, -0.5, 71.5, 95.5]]
    # The keypoints of N serving_box rows (the same crops, one batch).
    single = sigs[layout.SERVING_BOX](
        image_bytes=tf.constant([data, data]), box=tf.constant(boxes, tf.float32)
    )
    np.testing.assert_allclose(people["keypoints"], single["keypoints"].numpy(), rtol=0, atol=1e-4)
