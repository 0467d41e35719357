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
