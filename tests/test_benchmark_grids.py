"""The few-shot benchmark's tuning grids: valid settings, one of them the default.

The benchmark's --quick mode (run by CI) does not tune, so its grids are
checked here.
"""

import importlib.util
import pathlib

import pytest

PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "bench_fewshot.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_fewshot", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_tuned_setting_is_valid_and_one_is_the_default(bench):
    for method in bench.TUNED_META:
        settings = list(bench._grid(method))
        defaults = [bench._is_default(method, s) for s in settings]
        assert sum(defaults) == 1, (method, settings)
        for setting in settings:
            clf = bench.META_CLASSES[method]().set_params(**setting)
            assert clf.get_params()  # every name is a parameter of the class


def test_set_overrides_reach_every_skmeta_row_and_typos_are_refused(bench, monkeypatch):
    assert bench.parse_setting("pretrain_epochs=10") == ("pretrain_epochs", 10)
    assert bench.parse_setting("class_prior = task") == ("class_prior", "task")
    monkeypatch.setattr(bench, "META_OVERRIDES", {})
    monkeypatch.setattr(bench, "run", lambda name, args: None)
    bench.main(["--quick", "--datasets", "synthetic", "--set", "pretrain_epochs=2"])
    assert bench._meta_kwargs("quick", 0)["pretrain_epochs"] == 2
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--set", "pretrain_epoch=2"])


def test_compare_fewshot_reads_two_outputs_and_refuses_other_data(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "compare_fewshot", PATH.parent / "compare_fewshot.py"
    )
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    head = "| k | groups | method | bal. acc., mean | bal. acc., worst group |\n|---|\n"

    def output(name, pooled, maml):
        path = tmp_path / name
        path.write_text(
            f"Command: `{name}`\n\n{head}"
            f"| 5 | 3 | pooled LR | {pooled} ± 0.001 | 0.500 ± 0.002 |\n"
            f"| 5 | 3 | MAML (default) | {maml} ± 0.004 | 0.600 ± 0.010 |\n"
        )
        return str(path)

    a, b = output("a", 0.700, 0.750), output("b", 0.700, 0.772)
    compare.main([a, b, "--methods", "MAML (default)"])
    assert "| 5 | MAML (default) | 0.750 | 0.772 | +2.2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="baselines differ"):
        compare.main([a, output("c", 0.710, 0.772)])
