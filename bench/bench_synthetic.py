"""Throughput of the synthetic people generator (people per second on one process).

    python bench/bench_synthetic.py [--num=500] [--split=train] [--seed=0]

Prints render-only and render + JPEG rates; asserts nothing. Pin to one core for a per-core figure:
`taskset -c 0 python bench/bench_synthetic.py`.
"""

from __future__ import annotations

import argparse
import time

from stacked_hourglass.data.sources import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=500, help="people to generate per measurement")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = synthetic.SyntheticConfig()
    # Warm-up: TensorFlow's first encode_jpeg call builds the op; keep it out of the timing.
    list(synthetic.generate_examples(args.split, 5, seed=args.seed))

    start = time.perf_counter()
    for i in range(args.num):
        synthetic.render_scene(synthetic.example_rng(args.split, i, args.seed), config)
    render_s = time.perf_counter() - start

    start = time.perf_counter()
    total_bytes = 0
    for example in synthetic.generate_examples(args.split, args.num, seed=args.seed):
        total_bytes += len(example.image_encoded)
    full_s = time.perf_counter() - start

    print(f"synthetic people, split={args.split}, n={args.num}")
    print(f"  render only:           {args.num / render_s:8.1f} people/s")
    print(f"  render + JPEG (q={config.jpeg_quality}): {args.num / full_s:8.1f} people/s")
    print(f"  mean JPEG size:        {total_bytes / args.num / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
