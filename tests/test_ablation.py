"""`python -m stacked_hourglass.ablation`: the statistics on hand-computed numbers, the seeds'
bookkeeping (reuse of finished runs) with a stand-in for the subprocesses, one real run of the
command, and the error paths in-process."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from stacked_hourglass import ablation, run_dir
from stacked_hourglass.config import DataConfig, ExperimentConfig
from stacked_hourglass.utils import cli
from stacked_hourglass.workflows import ablation_lib

REPO = Path(__file__).resolve().parents[1]
TOY_TRAINING = [
    "--epochs=1", "--steps_per_epoch=2", "--batch_size=4", "--num_features=16", "--depth=1",
    "--input_size=64", "--eval_batch_size=8", "--tensorboard_images=0", "--verbose=0",
]  # fmt: skip
T_975_2 = 4.302653  # the t distribution's 97.5 % quantile, 2 degrees of freedom (t tables)


# --- parsing the variants and the comparisons they allow --------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("4x1", {"num_stacks": 4, "num_modules": 1, "supervise": "all"}),
        ("2x4_last", {"num_stacks": 2, "num_modules": 4, "supervise": "last"}),
    ],
)
def test_parse_variant(name, expected):
    assert ablation_lib.parse_variant(name) == expected


def test_parse_variant_rejects_garbage():
    with pytest.raises(ValueError, match="4by1"):
        ablation_lib.parse_variant("4by1")


def test_comparisons_are_the_papers():
    assert ablation_lib.comparisons(["1x2", "2x1", "2x1_last"]) == [
        ("2x1", "1x2", "stacks vs depth, 2 modules per place in all"),
        ("2x1", "2x1_last", "intermediate vs last-stack supervision"),
    ]
    pairs = ablation_lib.comparisons(["2x4", "4x2", "8x1", "8x1_last", "1x1_last"])
    assert [(a, b) for a, b, _ in pairs] == [
        ("4x2", "2x4"), ("8x1", "2x4"), ("8x1", "4x2"), ("8x1", "8x1_last"),
    ]  # fmt: skip
    # Different depths, or a single stack's supervision (nothing intermediate): no comparison.
    assert ablation_lib.comparisons(["1x1", "2x2", "1x1_last"]) == []


# --- statistics: hand-computed numbers ---------------------------------------------------------


def test_mean_and_std_is_the_sample_std():
    assert ablation_lib.mean_and_std([1.0, 2.0, 6.0]) == (3.0, math.sqrt(7.0))  # (4+1+9)/2
    assert ablation_lib.mean_and_std([5.0]) == (5.0, None)
    with pytest.raises(ValueError, match="no values"):
        ablation_lib.mean_and_std([])


def test_paired_difference_and_its_t_interval():
    a = {0: 62.0, 1: 65.0, 2: 66.0, 7: 99.0}  # seed 7 has no partner: left out
    b = {0: 61.0, 1: 63.0, 2: 63.0}
    d = ablation_lib.paired_difference(a, b)
    assert d["seeds"] == [0, 1, 2] and d["differences"] == [1.0, 2.0, 3.0]
    assert d["n"] == 3 and d["mean"] == 2.0 and d["std"] == 1.0
    half = T_975_2 * 1.0 / math.sqrt(3)  # 2.484
    assert d["half_width"] == pytest.approx(half, rel=1e-6)
    assert (d["low"], d["high"]) == pytest.approx((2.0 - half, 2.0 + half))
    one = ablation_lib.paired_difference({3: 70.0}, {3: 68.5})
    assert (one["n"], one["mean"], one["std"], one["half_width"], one["low"]) == (
        1, 1.5, None, None, None,
    )  # fmt: skip
    text = ablation_lib.format_differences([{**one, "a": "2x1", "b": "1x2", "comparison": "x"}])
    assert "+1.50 n<2: no interval" in " ".join(text.split()) and "n=1" in text
    with pytest.raises(ValueError, match=r"no common seed to pair: \[1\] vs \[2\]"):
        ablation_lib.paired_difference({1: 0.0}, {2: 0.0})


def _table(mean: float, head: float) -> dict:
    return {"columns": ["Head", "Wrist"], "Head": head, "Wrist": mean - 10, "Mean": mean,
            "Mean@0.1": mean / 2}  # fmt: skip


def test_aggregate_runs_and_the_table():
    runs = {
        0: {"parameters": 1_234_567, "validation": _table(60.0, 90.0)},
        1: {"parameters": 1_234_567, "validation": _table(64.0, 94.0)},
    }
    agg = ablation_lib.aggregate_runs(runs)
    assert agg["n"] == 2 and agg["seeds"] == [0, 1] and agg["parameters"] == 1_234_567
    assert agg["columns"] == ["Head", "Wrist", "Mean", "Mean@0.1"]
    assert agg["mean"] == {"Head": 92.0, "Wrist": 52.0, "Mean": 62.0, "Mean@0.1": 31.0}
    sd = math.sqrt(8.0)  # (2² + 2²) / (2 − 1)
    assert agg["std"] == pytest.approx({"Head": sd, "Wrist": sd, "Mean": sd, "Mean@0.1": sd / 2})
    header, line = ablation_lib.format_ablation_table({"2x1": agg}).splitlines()
    assert header.split() == ["variant", "params", "n", "Head", "Wrist", "Mean", "Mean@0.1"]
    assert line.split() == ["2x1", "1.23M", "2", "92.0±2.8", "52.0±2.8", "62.0±2.8", "31.0±1.4"]
    single = ablation_lib.aggregate_runs({5: runs[0]})
    assert single["std"]["Mean"] is None
    assert ablation_lib.format_ablation_table({"2x1": single}).splitlines()[1].split()[3] == "90.0"
    with pytest.raises(ValueError, match="seed 1 has 7 parameters, seed 0 1234567"):
        ablation_lib.aggregate_runs({**runs, 1: {**runs[1], "parameters": 7}})


def test_read_history_skips_epochs_without_the_metric(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,val_pckh\n0,1.0,10.5\n1,0.5,\n2,0.4,30\n")
    assert ablation_lib.read_history(tmp_path, "val_pckh") == [10.5, 30.0]


# --- the runs: a stand-in for the training and evaluation subprocesses ------------------------

# Mean PCKh of (variant, seed) in the stand-in runs: a variant effect plus a seed effect.
_EFFECT = {"1x2": 60.0, "2x1": 63.0}
_SEED = {0: 0.0, 1: 2.0, 2: -1.0}


class FakeSubprocess:
    """Writes what `train` / `evaluate` would (summary, history, config; the PCK figures) and
    records the calls: `calls` holds (module, model_dir)."""

    def __init__(self):
        self.calls = []

    def run(self, command, **kwargs):
        module = command[2].rsplit(".", 1)[1]
        args = dict(a[2:].split("=", 1) for a in command[3:] if a.startswith("--"))
        model_dir = Path(args["model_dir"])
        self.calls.append((module, str(model_dir.relative_to(model_dir.parents[1]))))
        if module == "train":
            name, seed = f"{args['num_stacks']}x{args['num_modules']}", int(args["seed"])
            mean = _EFFECT[name] + _SEED[seed]
            run_dir.save_config(
                str(model_dir),
                ExperimentConfig(data=DataConfig(dataset="synthetic", valid_files="v-*")).resolve(),
            )
            (model_dir / "history.csv").write_text(f"epoch,val_pckh\n0,{mean - 20}\n1,{mean}\n")
            summary = {"parameters": 1000 * int(args["num_modules"]), "train_seconds": 1.0,
                       "validation_metric": "val_pckh", "seed": seed, "mean": mean}  # fmt: skip
            (model_dir / "summary.json").write_text(json.dumps(summary))
        else:
            summary = json.loads((model_dir / "summary.json").read_text())
            table = _table(summary["mean"], 90.0 + summary["seed"])
            curves = {"thresholds": [0.0, 0.25, 0.5], "Mean": [0.0, table["Mean"] / 2, 90.0]}
            (model_dir / "evaluation").mkdir(exist_ok=True)
            (model_dir / "evaluation" / f"{model_dir.name}.pck.json").write_text(
                json.dumps({"table": table, "curves": curves})
            )
        return subprocess.CompletedProcess(command, 0, "", "")


def test_seeds_are_paired_aggregated_and_finished_runs_reused(monkeypatch, tmp_path, capsys):
    fake = FakeSubprocess()
    monkeypatch.setattr(ablation_lib, "subprocess", fake)
    base = tmp_path / "base.flags"
    base.write_text("--epochs=1\n")
    work = tmp_path / "work"

    def ablate(seeds):
        fake.calls.clear()
        return ablation_lib.run_ablation(str(base), work, ["1x2", "2x1"], [], seeds=seeds)

    result = ablate(2)
    # Seed by seed, each run trained then evaluated once.
    assert fake.calls == [
        (step, f"{name}/seed{seed}")
        for seed in (0, 1) for name in ("1x2", "2x1") for step in ("train", "evaluate")
    ]  # fmt: skip
    agg = result["aggregates"]["2x1"]
    assert (agg["n"], agg["mean"]["Mean"], agg["std"]["Mean"]) == (2, 64.0, math.sqrt(2.0))
    assert agg["mean"]["Head"] == 90.5 and agg["parameters"] == 1000
    (diff,) = result["differences"]
    assert (diff["a"], diff["b"], diff["differences"], diff["std"]) == ("2x1", "1x2", [3.0] * 2, 0)
    assert diff["half_width"] == 0.0
    out = capsys.readouterr().out
    assert "64.0±1.4" in out and "2x1 − 1x2" in out and "[+3.00, +3.00]" in out
    saved = json.loads((work / "ablation.json").read_text())
    assert [(r["variant"], r["seed"]) for r in saved["runs"]] == [
        ("1x2", 0), ("1x2", 1), ("2x1", 0), ("2x1", 1),
    ]  # fmt: skip
    assert saved["aggregates"]["1x2"]["mean"]["Mean"] == 61.0
    assert saved["differences"][0]["mean"] == 3.0 and saved["seeds"] == [0, 1]
    assert (work / "ablation.png").stat().st_size > 10_000
    finished = {p: p.stat().st_mtime_ns for p in work.glob("*/seed*/**/*") if p.is_file()}

    # A larger --seeds trains only the new seed; the finished runs' files are untouched.
    result = ablate(3)
    assert fake.calls == [("train", "1x2/seed2"), ("evaluate", "1x2/seed2"),
                          ("train", "2x1/seed2"), ("evaluate", "2x1/seed2")]  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    diff = result["differences"][0]
    assert diff["n"] == 3 and diff["differences"] == [3.0] * 3
    assert result["aggregates"]["1x2"]["mean"]["Mean"] == pytest.approx(181.0 / 3)

    # A finished run without its evaluation is evaluated, not retrained; nothing else runs.
    (work / "2x1" / "seed1" / "evaluation" / "seed1.pck.json").unlink()
    ablate(3)
    assert fake.calls == [("evaluate", "2x1/seed1")]


# About 40 s of subprocesses: run by .ci/run with the other large end-to-end tests; the
# bookkeeping is tested in-process above.
@pytest.mark.large
def test_ablation_command(tmp_path, synthetic_records):
    """The real thing at toy size: one run (seed 4) trained, evaluated, tabulated (2 seeds of the
    three variants: the large test below; the seeds' bookkeeping: the test above)."""
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.ablation",
            f"--base_flagfile={REPO / 'configs' / 'demo.flags'}", f"--workdir={tmp_path}",
            "--variants=2x1", "--seeds=1", "--seed_base=4",
            *[f"--train_flag={f}" for f in TOY_TRAINING],
            f"--train_flag=--train_files={synthetic_records['train']}",
            f"--train_flag=--valid_files={synthetic_records['valid']}",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "these variants allow none of the paper's comparisons" in result.stdout
    saved = json.loads((tmp_path / "ablation.json").read_text())
    (row,) = saved["runs"]
    assert row["seed"] == 4 and row["model_dir"] == str(tmp_path / "2x1" / "seed4")
    config = run_dir.load_config(row["model_dir"])
    assert (config.train.seed, config.model.num_stacks, config.model.num_modules) == (4, 2, 1)
    agg = saved["aggregates"]["2x1"]
    assert agg["n"] == 1 and agg["mean"]["Mean"] == row["validation"]["Mean"]
    assert agg["std"]["Mean"] is None
    assert (tmp_path / "ablation.png").exists()


@pytest.mark.large
def test_ablation_default_variants_end_to_end(tmp_path, synthetic_records):
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.ablation",
            f"--base_flagfile={REPO / 'configs' / 'demo.flags'}", f"--workdir={tmp_path}",
            "--seeds=2", *[f"--train_flag={f}" for f in TOY_TRAINING],
            f"--train_flag=--train_files={synthetic_records['train']}",
            f"--train_flag=--valid_files={synthetic_records['valid']}",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert list(saved["aggregates"]) == ["1x2", "2x1", "2x1_last"]
    assert [(d["a"], d["b"], d["n"]) for d in saved["differences"]] == [
        ("2x1", "1x2", 2), ("2x1", "2x1_last", 2),
    ]  # fmt: skip
    seeds = {(r["variant"], run_dir.load_config(r["model_dir"]).train.seed) for r in saved["runs"]}
    assert seeds == {(v, s) for v in ("1x2", "2x1", "2x1_last") for s in (0, 1)}


# --- error paths, in-process -------------------------------------------------------------------


def _main(capsys, *argv):
    status = ablation.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--base_flagfile is required"),
        (["--base_flagfile={flags}", "--variants=2x1,4by1"], "variant '4by1' is not"),
        (["--base_flagfile={flags}", "--variants="], "--variants is empty"),
        (["--base_flagfile={flags}", "--variants=2x1,1x2,2x1"], "variants listed twice: 2x1"),
        (["--base_flagfile={tmp}/missing.flags"], "missing.flags: no such training flagfile"),
        (["--base_flagfile={flags}", "--seeds=0"], "--seeds"),
        (
            ["--base_flagfile={flags}", "--train_flag=--seed=3"],
            "--train_flag=--seed=3: the ablation sets --seed for each run",
        ),
    ],
)
def test_ablation_errors_are_one_line_and_train_nothing(capsys, tmp_path, argv, message):
    flags = tmp_path / "base.flags"
    flags.write_text("--epochs=1\n")
    argv = [a.format(flags=flags, tmp=tmp_path) for a in argv]
    status, _, err = _main(capsys, *argv, f"--workdir={tmp_path / 'work'}")
    assert status == 1
    assert len(err) == 1 and err[0].startswith("ablation: error: ") and message in err[0], err
    assert not (tmp_path / "work").exists()


def test_the_ablation_flagfile_extends_the_demo():
    """configs/ablation.flags parses as the command's flags; its base is the demo's recipe."""
    fv = cli.parse(
        ablation.define_flags, ["ablation", f"--flagfile={REPO / 'configs' / 'ablation.flags'}"],
        "ablation",
    )  # fmt: skip
    assert (
        fv["base_flagfile"].value == "configs/demo.flags"
        and (REPO / "configs/demo.flags").is_file()
    )
    assert (fv["seeds"].value, fv["variants"].value) == (3, ["1x2", "2x1", "2x1_last"])
    assert "--input_size=64" in fv["train_flag"].value
