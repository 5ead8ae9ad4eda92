"""Whether two configs ran the same recipe (experiments/recipe.py): the keys at which a finished run is another run."""

from __future__ import annotations

import copy
from typing import Any

from vicinal.experiments.config import ExperimentConfig, config_to_dict
from vicinal.experiments.recipe import result_key_differences


def _config(**sections: dict[str, Any]) -> dict[str, Any]:
    """The default config as ``config.yaml`` holds it, with ``sections`` merged in (one level deep)."""
    d = copy.deepcopy(config_to_dict(ExperimentConfig()))
    for name, values in sections.items():
        d[name].update(values)
    return d


def test_result_key_differences_names_the_keys_that_change_the_result() -> None:
    base = _config()
    assert result_key_differences(base, _config()) == []
    # seed, logging and where the data lies are the same run; the recipe is not
    same = _config(train={"seed": 3, "log_every": 7}, data={"root": "/elsewhere", "eval_batch_size": 64})
    assert result_key_differences(base, same) == []
    other = _config(train={"epochs": base["train"]["epochs"] + 1}, optim={"lr": 0.5})
    assert result_key_differences(base, other) == ["optim.lr", "train.epochs"]


def test_labels_count_a_run_of_another_row_is_not_this_one() -> None:
    # the report pools and pairs runs by name and row: a finished run filed under another row is not the plan's
    base = _config()
    assert result_key_differences(base, {**base, "row": "cifar10/other", "name": "x"}) == ["name", "row"]


def test_inside_kwargs_only_the_entries_that_change_nothing_are_left_out() -> None:
    # data.kwargs.download (may a missing data set be fetched) and the loader settings change nothing computed: a rerun
    # with --set data.kwargs.download=true must find its finished runs; any other entry, on one side only, counts
    base = _config(data={"kwargs": {"n": 100}})
    fetch = _config(data={"kwargs": {"n": 100, "download": True, "num_workers": 4, "progress": False}})
    assert result_key_differences(base, fetch) == []
    assert result_key_differences(base, _config(data={"kwargs": {"n": 100, "width": 4}})) == ["data.kwargs"]
    assert result_key_differences(base, _config(data={"kwargs": {}})) == ["data.kwargs"]


def test_a_key_one_config_lacks_is_a_difference() -> None:
    # a config.yaml written by another version of the lab, lacking a key or holding one this lab does not know:
    # even where the present side's value is None (null in YAML), the run is not known to be the same
    base = _config()
    lacking = copy.deepcopy(base)
    del lacking["train"]["max_steps"]
    assert base["train"]["max_steps"] is None
    assert result_key_differences(base, lacking) == ["train.max_steps"]
    extra = copy.deepcopy(base)
    extra["train"]["new_option"] = 1
    assert result_key_differences(base, extra) == ["train.new_option"]


def test_options_the_variant_or_schedule_never_reads_are_the_same_run() -> None:
    # an ERM run recorded with another alpha (a base's alpha, or --set 'mix={alpha: A}' before it went row by row)
    # trained the same: a rerun must find it done, the report pool it
    erm = _config(mix={"variant": "erm", "alpha": 1.0})
    assert result_key_differences(erm, _config(mix={"variant": "erm", "alpha": 0.2, "sigma": 0.3})) == []
    mixup = _config(mix={"variant": "mixup", "alpha": 1.0})
    assert result_key_differences(mixup, _config(mix={"variant": "mixup", "alpha": 0.2})) == ["mix.alpha"]
    assert result_key_differences(mixup, _config(mix={"variant": "mixup", "sigma": 0.3})) == []
    cosine = _config(schedule={"name": "cosine", "milestones": [], "gamma": 0.1})
    assert result_key_differences(cosine, _config(schedule={"name": "cosine", "milestones": [5], "gamma": 0.5})) == []
    assert result_key_differences(cosine, _config(schedule={"name": "cosine", "eta_min": 0.01})) == ["schedule.eta_min"]
    # gamma of a multistep schedule reads only where there is a milestone to apply it at
    flat = _config(schedule={"name": "multistep", "milestones": [], "gamma": 0.5})
    assert result_key_differences(flat, _config(schedule={"name": "multistep", "milestones": []})) == []
    steps = _config(schedule={"name": "multistep", "milestones": [3], "gamma": 0.5})
    assert result_key_differences(steps, _config(schedule={"name": "multistep", "milestones": [3]})) == [
        "schedule.gamma"
    ]


def test_an_option_one_side_reads_is_compared_by_value() -> None:
    # unread_by_both: what only one variant reads is compared as usual, so an ERM run and a mixup run of one alpha
    # differ at the variant alone, and at alpha too where their alphas differ
    erm = _config(mix={"variant": "erm", "alpha": 1.0})
    assert result_key_differences(erm, _config(mix={"variant": "mixup", "alpha": 1.0})) == ["mix.variant"]
    assert result_key_differences(erm, _config(mix={"variant": "mixup", "alpha": 0.2})) == ["mix.alpha", "mix.variant"]
