"""The owner of the lab's random streams (data/seeds.py): every stream number defined there once, all distinct."""

from __future__ import annotations

import ast
from pathlib import Path

from vicinal.experiments.data import (
    seeds,
)
from vicinal.experiments.data.base import (
    STREAM_AUGMENT,
    derive_seed,
)
from vicinal.experiments.tasks import figures, gan, gan_train, uci_train

SRC = Path(__file__).resolve().parents[3] / "src" / "vicinal"


def test_stream_numbers_are_distinct_and_pinned() -> None:
    # Every committed result was drawn from these numbers: changing one changes results, so each is pinned here.
    assert seeds.STREAMS == {
        "STREAM_ORDER": 1,
        "STREAM_AUGMENT": 2,
        "STREAM_FETCH": 3,
        "STREAM_SUBSET": 4,
        "STREAM_SPLIT": 5,
        "STREAM_CORRUPT": 6,
        "STREAM_MIX": 101,
        "STREAM_GLOBAL": 102,
        "STREAM_UCI_INIT": 601,
        "STREAM_UCI_ORDER": 602,
        "STREAM_UCI_MIX": 603,
        "STREAM_GAN_INIT": 701,
        "STREAM_GAN_DATA": 702,
        "STREAM_GAN_EVAL": 703,
        "STREAM_GAN_FIGURE": 704,
        "STREAM_TOY_INIT": 801,
        "STREAM_TOY_MIX": 802,
    }
    assert len(set(seeds.STREAMS.values())) == len(seeds.STREAMS)


def test_no_module_but_seeds_defines_a_stream_number() -> None:
    defined = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "seeds.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):  # STREAM_X: int = 5
                targets = [node.target]
            else:
                targets = []
            for target in targets:
                if isinstance(target, ast.Name) and target.id.startswith("STREAM_"):
                    defined.append(f"{path.relative_to(SRC)}: {target.id}")
    assert defined == []


def test_the_users_names_are_the_owners_numbers() -> None:
    assert (uci_train.STREAM_INIT, uci_train.STREAM_ORDER, uci_train.STREAM_MIX) == (601, 602, 603)
    assert (gan_train.STREAM_INIT, gan_train.STREAM_DATA, gan_train.STREAM_EVAL, gan.STREAM_FIGURE) == (
        701,
        702,
        703,
        704,
    )
    assert (figures.STREAM_TOY_INIT, figures.STREAM_TOY_MIX) == (801, 802)


def test_derive_seed_is_deterministic_and_separates_neighbours() -> None:
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    seeds = {derive_seed(0, STREAM_AUGMENT, e) for e in range(100)}
    assert len(seeds) == 100
    assert derive_seed(1, 2) != derive_seed(2, 1)
    assert all(0 <= s < 2**63 for s in seeds)


def test_derive_seed_values_are_pinned() -> None:
    # every committed result was drawn from generators seeded by this hash, as from the stream numbers above: a
    # changed constant or shift changes them all while the properties of the test above still hold
    assert seeds._splitmix64(0) == 0xE220A8397B1DCDAF  # SplitMix64's published first output for the state 0
    assert derive_seed() == 1305961721744163945
    assert derive_seed(0) == 1610172448792072464
    assert derive_seed(0, 1, 2) == 1362597086665764631
    assert derive_seed(5, seeds.STREAM_MIX, 0) == 5369487065100614999
    # parts are taken modulo 2**64
    assert derive_seed(-1) == derive_seed(2**64 - 1) == 2824913994104722697
    assert derive_seed(2**64) == derive_seed(0)
    assert seeds.make_generator(5, seeds.STREAM_MIX, 0).initial_seed() == 5369487065100614999
