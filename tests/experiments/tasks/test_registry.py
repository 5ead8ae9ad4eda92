"""The table registry (tasks/registry.py): the paper-source text of tables that publish two numbers per row."""

from __future__ import annotations

from vicinal.experiments.tasks import imagenet, speech
from vicinal.experiments.tasks.registry import paper_pairs_source


def test_paper_pairs_source_lists_both_numbers_and_marks_missing_ones() -> None:
    text = paper_pairs_source(
        "Paper, Table 9", "top-1 error", ("top-1", "top-5"), {"a/erm": (23.5, None), "b": (1.0, 2.25)}
    )
    assert text == "Paper, Table 9; the column is the top-1 error (top-1 / top-5: a/erm 23.5 / -, b 1 / 2.25)"


def test_speech_and_imagenet_sources_name_both_published_columns() -> None:
    assert speech.PAPER_SPEECH_SOURCE.endswith("the column is the test error (validation / test: lenet/erm 9.8 / 10.3, "
                                               "lenet/mixup0.1 10.1 / 10.8, lenet/mixup0.2 10.2 / 11.3, vgg11/erm 5 / 4.6, "
                                               "vgg11/mixup0.1 4 / 3.8, vgg11/mixup0.2 3.9 / 3.4)")  # fmt: skip
    assert (
        "; the column is the top-1 error (top-1 / top-5: resnet50/90/erm 23.5 / -, " in imagenet.PAPER_IMAGENET_SOURCE
    )
