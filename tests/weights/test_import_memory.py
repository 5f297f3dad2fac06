"""Peak memory of `import_checkpoint` (weights.importer), measured in fresh processes.

The import's peak resident memory (VmHWM), less the process's resident memory once TensorFlow
and the package are imported, is compared with the same growth for building the same network
without any checkpoint: building it costs the weights once plus TensorFlow's per-variable state
(about 55 KB a variable), which no import can avoid. The import may add half the weights'
float32 size (one layer's arrays at a time, the allocator's slack) and a constant for the
checkpoint's pickle and the zip and HDF5 writers' buffers (about 5 MB measured; 16 MB allowed,
for other allocators). Reading the whole checkpoint before building the model, converting every
tensor at once and writing the weights into memory before the file cost 2.5x the build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stacked_hourglass.config import ModelConfig
from stacked_hourglass.model import build_model
from stacked_hourglass.weights import importer
from stacked_hourglass.weights.torch_pickle_writer import save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Two stacks of the paper's width: 6.6M parameters, 26 MB of float32.
ARCHITECTURE = {
    "num_stacks": 2,
    "num_features": 256,
    "depth": 4,
    "num_joints": 16,
    "num_modules": 1,
    "stem_features": [64, 128, 256],
}
FIXED_BYTES = 16 * 2**20

_CHILD = """
import json, sys
import h5py, keras, tensorflow
from stacked_hourglass.weights import importer

def kib(key):
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(key)) * 1024

base = kib("VmRSS:")
mode, argument = sys.argv[1], json.loads(sys.argv[2])
if mode == "build":
    model = importer.build_imported_model(argument, (0.0, 0.0, 0.0))
else:
    model = importer.import_checkpoint("princeton", argument[0], argument[1]).model
print(json.dumps({"growth": kib("VmHWM:") - base, "model_bytes": 4 * model.count_params()}))
"""


def _peak_growth(mode: str, argument) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, json.dumps(argument)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.large
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc/self/status")
def test_import_peak_memory_is_the_build_plus_half_the_weights(tmp_path):
    model = build_model(ModelConfig(**ARCHITECTURE, stem_padding="symmetric"))
    checkpoint = tmp_path / "princeton.pt"
    save_checkpoint(checkpoint, {"state_dict": importer.export_reference_state(model, "princeton")})
    del model
    build = _peak_growth("build", ARCHITECTURE)
    imported = _peak_growth("import", [str(checkpoint), str(tmp_path / "run")])
    assert imported["model_bytes"] == build["model_bytes"]
    limit = build["growth"] + 0.5 * imported["model_bytes"] + FIXED_BYTES
    assert imported["growth"] <= limit, (imported, build)
