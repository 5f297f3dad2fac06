"""Installs the stacked_hourglass package."""

import pathlib

import setuptools

setuptools.setup(
    name="stacked_hourglass",
    version="0.1.0",
    description=(
        "Stacked Hourglass Networks for Human Pose Estimation (Newell et al., ECCV 2016) "
        "in TensorFlow 2 / Keras 3"
    ),
    long_description=pathlib.Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["stacked_hourglass", "stacked_hourglass.*"]),
    # The training configs travel with the package (importlib.resources), so the demo and
    # `--flagfile` work from an installed copy too; the checkout's configs/ links to them.
    package_data={"stacked_hourglass": ["configs/*.flags"]},
    install_requires=[
        "tensorflow==2.21.*",
        # The trainer and the optimizer use private Keras hooks (training/keras_hooks.py checks
        # them at import): the releases they were tested with, as keras_hooks.TESTED_KERAS.
        "keras>=3.15,<3.16",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "matplotlib>=3.8,<4",
        "absl-py>=2.1,<3",
        "h5py>=3.10,<4",
        "tensorboard>=2.20,<3",
        # COCO keypoint AP: every published COCO number is pycocotools' COCOeval.
        "pycocotools>=2.0.8,<3",
    ],
    extras_require={
        "dev": [
            "pytest>=8,<10",
            "pytest-xdist>=3.6,<4",
            "ruff>=0.6,<1",
            "import-linter>=2.1,<3",
            "hypothesis>=6.100,<7",
            # The serving tests (tests/serving/test_litert.py, test_rest.py) need these too.
            "ai-edge-litert>=2.3,<3",
            "tensorflow-serving-api>=2.21,<3",
            # The video tests (predict --video).
            "av>=14,<19",
        ],
        # `export --format=litert`, `predict/evaluate --litert`, and building gRPC requests.
        "serving": [
            "ai-edge-litert>=2.3,<3",
            "tensorflow-serving-api>=2.21,<3",
        ],
        # `predict --video`: PyAV reads and writes video through the FFmpeg in its wheels.
        "video": ["av>=14,<19"],
    },
)
