"""The ``speech`` table: Table 4 (left) of the paper (Section 3.3), Google Speech Commands, validation / test error.

Rows: {LeNet, VGG-11} x {ERM, mixup alpha = 0.1, mixup alpha = 0.2}, one row each of the table's sweep.

Paper scale (the sweep ``configs/speech/paper.yaml``): Google Speech Commands v0.01 (30 words, the release's
``validation_list.txt`` / ``testing_list.txt``), normalised log spectrograms 1 x 160 x 101 (``data/audio.py``),
mixup at the spectrogram level, the paper's LeNet and VGG-11 (``models/small.py``), Adam lr 3e-3 divided by 10
every 10 epochs (``schedule: step``, ``step_size: 10``), 30 epochs, batch 100. "A warm-up period of five epochs
where we train the network on original training examples": ``mix.warmup_epochs: 5``, which the trainer reads as
"0-based epochs 0..4 are unmixed, mixing starts at epoch 5 (the sixth)", i.e. exactly five unmixed epochs.
The paper states no weight decay: 0 (torch's Adam default, as in the GCommandsPytorch code the models follow).

CPU scale (the sweep ``configs/speech/cpu.yaml``): the Free Spoken Digit Dataset (``../shared/data/fsdd``: 10 digits, 6
speakers, 8 kHz; 2,430 train / 270 validation / 300 test), narrower models and the paper's 30-epoch
schedule; see :data:`CPU_NOTES` for the measured cost.

Validation error. Whenever the bundle has a validation split, the trainer evaluates it with the test split and
records ``val_error``, ``val_top5_error``, ``val_nll``, ``val_ece`` and ``val_n`` in every evaluated epoch's
record (``metrics.jsonl``) and ``last_val_error`` in ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

from .registry import Table, config_files, paper_pairs_source, register_table

__all__ = ["CPU_NOTES", "PAPER_SPEECH", "PAPER_SPEECH_SOURCE", "ROWS", "SPEECH", "speech_configs"]

MODELS = ("lenet", "vgg11")
METHODS = ("erm", "mixup0.1", "mixup0.2")
# Row keys as used in configs (`row:`); the report's paper column is keyed by them.
ROWS = tuple(f"{m}/{k}" for m in MODELS for k in METHODS)
# Published errors in percent, (validation, test), from paper/EXPERIMENTS.md 3.3 (Table 4, left).
PAPER_SPEECH: dict[str, tuple[float, float]] = {
    "lenet/erm": (9.8, 10.3),
    "lenet/mixup0.1": (10.1, 10.8),
    "lenet/mixup0.2": (10.2, 11.3),
    "vgg11/erm": (5.0, 4.6),
    "vgg11/mixup0.1": (4.0, 3.8),
    "vgg11/mixup0.2": (3.9, 3.4),
}
PAPER_SPEECH_SOURCE = paper_pairs_source(
    "Zhang et al., mixup, ICLR 2018, Table 4 (left) via paper/EXPERIMENTS.md 3.3: Google Speech Commands v0.01, "
    "full LeNet and VGG-11, 30 epochs",
    "test error",
    ("validation", "test"),
    PAPER_SPEECH,
)

CPU_NOTES = (
    "cpu scale: FSDD (10 spoken digits, 6 speakers, 8 kHz; 2,430 train / 270 validation / 300 test, "
    "spectrograms 160 x 101 as in the paper) instead of Google Commands (not on this machine). "
    "LeNet with 8 channels and 128 hidden units (0.84 M parameters instead of 16.3 M) and VGG-11 at width/16 "
    "(4..32 channels, 52 k parameters instead of 13.2 M): the full models cost 1.3 and ~15 CPU-seconds per "
    "batch of 100. The paper's schedule (since the regime rule: at the earlier 9 epochs LeNet ERM ended at 2.88% "
    "training error): 30 epochs, Adam lr 3e-3 divided by 10 every 10 epochs, batch 100, mixup after 5 unmixed "
    "warm-up epochs. ERM / mixup 0.1 / mixup 0.2, 3 seeds, one thread per run. Measured (one thread, process time, "
    "loaded machine): 0.35 CPU-s per training step for both models; one epoch through the trainer (25 steps + test "
    "evaluation) took 10-11 CPU-s, so a run takes ~5 CPU-minutes and the 18 runs ~1.5 CPU-hours."
)


def speech_configs(scale: str) -> list[Path]:
    """The config files of ``scale`` ("cpu" or "paper"), sorted by name.

    Raises:
        ValueError: unknown scale.
        FileNotFoundError: the folder holds no config (not a source checkout).
    """
    return config_files("speech", scale)


SPEECH = register_table(
    Table(
        name="speech",
        title="Table 4 left (Section 3.3): Google Commands validation / test error, LeNet and VGG-11, ERM vs mixup",
        configs=speech_configs,
        default_seeds={"cpu": 3, "paper": 1},
        notes=CPU_NOTES,
        paper={row: test for row, (_, test) in PAPER_SPEECH.items()},
        paper_source=PAPER_SPEECH_SOURCE,
    )
)
