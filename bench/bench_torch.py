r"""PyTorch counterpart of bench_train.py / bench_infer.py (prints figures, asserts nothing).

    python bench/bench_torch.py --num_stacks=8 --input_size=256 --batch_size=4 [--steps=10]
        [--mode=train|infer] [--mixed_precision=bfloat16] [--channels_last]

Times the network of torch_hourglass.py (the package's architecture) on random tensors in memory,
on the CPU with one thread per available core. --mode=train: RMSprop (lr 2.5e-4, alpha 0.99,
eps 1e-8, Torch's placement as in the package's TorchRMSprop) on the sum of the per-stack MSEs;
--mode=infer: eval mode under torch.inference_mode(). --mixed_precision=bfloat16 runs the forward
pass under torch.autocast("cpu", torch.bfloat16) (weights and optimizer stay float32, the loss is
computed in float32), like Keras's mixed_bfloat16 policy. Tensors are NCHW by default (Torch's
default; on the 2-core AVX-512 CPU this was written on, torch 2.13.0+cpu ran --channels_last
slower). The last two lines have the same format as bench_train.py's, which bench/compare.py
parses. Needs torch (optional: `pip install torch==2.13.0`, pinned; never unpinned).
"""

from __future__ import annotations

import os
import time

from absl import app, flags

_NUM_STACKS = flags.DEFINE_integer("num_stacks", 2, "Stacks.")
_NUM_FEATURES = flags.DEFINE_integer("num_features", 256, "Features.")
_DEPTH = flags.DEFINE_integer("depth", 4, "Hourglass depth.")
_NUM_JOINTS = flags.DEFINE_integer("num_joints", 16, "Heatmap channels.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", 256, "Input side.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps after the first.", lower_bound=1)
_MIXED = flags.DEFINE_enum("mixed_precision", "none", ["none", "bfloat16"], "Autocast dtype.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "infer"], "Train steps or forward passes.")
_CHANNELS_LAST = flags.DEFINE_bool(
    "channels_last", False, "NHWC memory format (TF's layout; slower with this CPU build)."
)
_THREADS = flags.DEFINE_integer("threads", None, "Intra-op threads; default: available cores.")


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    start = time.perf_counter()
    import torch
    import torch_hourglass  # next to this file: bench/ is sys.path[0]
    from torch.nn import functional as F  # noqa: N812

    imported = time.perf_counter()
    threads = _THREADS.value or _available_cores()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    train = _MODE.value == "train"
    bf16 = _MIXED.value == "bfloat16"
    memory_format = torch.channels_last if _CHANNELS_LAST.value else torch.contiguous_format
    model = torch_hourglass.build(
        _NUM_STACKS.value, _NUM_FEATURES.value, _DEPTH.value, _NUM_JOINTS.value,
        channels_last=_CHANNELS_LAST.value,
    )  # fmt: skip
    model.train(train)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4, alpha=0.99, eps=1e-8)
    built = time.perf_counter()
    b, s, h = _BATCH_SIZE.value, _INPUT_SIZE.value, _INPUT_SIZE.value // 4
    x = torch.rand(b, 3, s, s).contiguous(memory_format=memory_format)
    y = (torch.rand(b, _NUM_JOINTS.value, h, h) ** 8).contiguous(memory_format=memory_format)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = model(x)
        loss = sum(F.mse_loss(out.float(), y) for out in outputs)
        loss.backward()
        optimizer.step()
        return loss.item()

    def infer_step():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = model(x)
        return outputs[-1].float().sum().item()

    step_fn = train_step if train else infer_step
    step_fn()
    first = time.perf_counter()
    for _ in range(_STEPS.value):
        step_fn()
    done = time.perf_counter()
    rate = _STEPS.value * b / (done - first)
    print(
        f"{_NUM_STACKS.value} stacks x {_NUM_FEATURES.value} features, {s}x{s}, batch {b}, "
        f"torch {torch.__version__}, mode {_MODE.value}, autocast {_MIXED.value}, "
        f"channels_last {_CHANNELS_LAST.value}, threads {threads}, "
        f"{torch_hourglass.count_trainable(model):,} trainable parameters"
    )
    print(f"  import torch + model: {imported - start:.1f} s")
    print(f"  build:               {built - imported:.1f} s")
    print(f"  first {_MODE.value} step:    {first - built:.1f} s")
    print(f"  time to first step:  {first - start:.1f} s from process start")
    step = (done - first) / _STEPS.value
    print(f"  throughput:          {rate:.2f} images/s ({step:.3f} s/step)")


if __name__ == "__main__":
    app.run(main)
