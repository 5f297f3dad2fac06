"""utils.cli: flags parsed per call, user errors as one line on stderr, exit statuses."""

import sys

import pytest
from absl import flags

from stacked_hourglass.utils import cli, errors

DOC = """The toy command.

    python -m toy --name=NAME [--count=N]
"""


def define_flags(fv):
    flags.DEFINE_string("name", None, "Who to greet (required).", flag_values=fv)
    flags.DEFINE_integer("count", 1, "How many times.", lower_bound=0, flag_values=fv)
    flags.DEFINE_enum(
        "fail",
        "no",
        ["no", "value", "key", "os", "bug", "interrupt"],
        "How to fail.",
        flag_values=fv,
    )


def run(fv):
    cli.require(fv, "name")
    fail = fv["fail"].value
    if fail == "value":
        raise ValueError(f"count={fv['count'].value} is not enough\n  and a second line")
    if fail == "key":
        raise KeyError("no such joint 'nose'")
    if fail == "os":
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/config.json")
    if fail == "bug":
        raise RuntimeError("a bug")
    if fail == "interrupt":
        raise KeyboardInterrupt
    for _ in range(fv["count"].value):
        print(f"hello {fv['name'].value}")
    return 3 if fv["count"].value == 0 else None


def toy(argv):
    return cli.main("toy", define_flags, run, argv, DOC)


def _one_error_line(capsys, expected):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines == [f"toy: error: {expected}"], captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured


def test_runs_and_returns_the_exit_status(capsys):
    assert toy(["--name=ann", "--count=2"]) == 0
    assert capsys.readouterr().out == "hello ann\nhello ann\n"
    assert toy(["--name=ann", "--count=0"]) == 3  # what run returned


def test_flags_are_fresh_on_every_call(capsys):
    assert toy(["--name=ann", "--count=2"]) == 0
    assert toy(["--name=bob"]) == 0  # --count is back to its default
    assert capsys.readouterr().out == "hello ann\nhello ann\nhello bob\n"


def test_unknown_flag_is_one_line(capsys):
    assert toy(["--name=ann", "--colour=red"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("toy: error: ")
    assert "colour" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_bad_flag_value_is_one_line(capsys):
    assert toy(["--name=ann", "--count=-1"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("toy: error: ") and captured.err.count("\n") == 1
    assert "count" in captured.err


def test_positional_arguments_are_refused(capsys):
    assert toy(["--name=ann", "extra", "more"]) == 1
    _one_error_line(capsys, "unexpected arguments: extra more")


@pytest.mark.parametrize("flag", ["--help", "-h", "--helpfull"])
def test_help_exits_0_with_the_doc_and_the_flags(capsys, flag):
    assert toy([flag]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("The toy command.")
    assert "--name" in captured.out and "Who to greet" in captured.out
    assert "--count" in captured.out and "--fail" in captured.out
    assert captured.err == ""


def test_require_names_the_missing_flag(capsys):
    assert toy([]) == 1
    _one_error_line(capsys, "--name is required")
    assert toy(["--name="]) == 1
    _one_error_line(capsys, "--name is required")


def test_value_error_in_run_is_its_first_line(capsys):
    assert toy(["--name=ann", "--count=4", "--fail=value"]) == 1
    _one_error_line(capsys, "count=4 is not enough")


def test_key_and_os_errors_are_one_line(capsys):
    assert toy(["--name=ann", "--fail=key"]) == 1
    _one_error_line(capsys, "no such joint 'nose'")  # not repr()'s extra quotes
    assert toy(["--name=ann", "--fail=os"]) == 1
    _one_error_line(capsys, "[Errno 2] No such file or directory: '/nowhere/config.json'")


def test_interrupt_is_one_line(capsys):
    assert toy(["--name=ann", "--fail=interrupt"]) == 1
    _one_error_line(capsys, "interrupted")


def test_bugs_keep_their_traceback():
    with pytest.raises(RuntimeError, match="a bug"):
        toy(["--name=ann", "--fail=bug"])


def test_flagfile(tmp_path, capsys):
    flagfile = tmp_path / "toy.flags"
    flagfile.write_text("# a comment\n--name=cy\n--count=2\n")
    assert toy([f"--flagfile={flagfile}", "--count=1"]) == 0
    assert capsys.readouterr().out == "hello cy\n"
    assert toy([f"--flagfile={tmp_path / 'missing.flags'}"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("toy: error: ") and captured.err.count("\n") == 1


def test_argv_none_reads_sys_argv(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["toy", "--name=dee"])
    assert cli.main("toy", define_flags, run, None, DOC) == 0
    assert capsys.readouterr().out == "hello dee\n"


def test_one_line():
    assert errors.one_line(ValueError("\n\n  first  \nsecond")) == "first"
    assert errors.one_line(KeyError("k")) == "k"
    assert errors.one_line(ValueError("")) == "ValueError"
    assert errors.one_line("a\n b") == "a b"
    assert errors.one_line("x" * 20, limit=10) == "x" * 7 + "..."
    assert errors.one_line(RuntimeError("{{function_node f}} bad [Op:Conv2D] more")) == "bad"
    assert issubclass(cli.UsageError, ValueError)
