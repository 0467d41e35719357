"""The demo's command line and show_versions."""

import subprocess
import sys

import pytest

from skmeta import show_versions
from skmeta._demo import cli


def test_help_explains_the_options_without_running(capsys):
    with pytest.raises(SystemExit) as exit:
        cli(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for option in ("--quick", "--dataset", "--threads", "--epochs"):
        assert option in out
    assert "Meta-training" not in out


@pytest.mark.slow
def test_quick_demo_runs_on_the_hospitals():
    # CI runs the full demo on Adult; this checks another data set end to end.
    for dataset in ("heart",):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "skmeta",
                "--quick",
                "--quiet",
                "--dataset",
                dataset,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "worst group" in out and "Held-out group" in out


def test_show_versions_reports_the_torch_build_and_threads(capsys):
    show_versions()
    out = capsys.readouterr().out
    for line in ("skmeta:", "torch build:", "torch threads:", "torch BLAS:"):
        assert line in out
