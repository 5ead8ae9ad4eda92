"""Reliability diagrams (Guo et al., 2017): accuracy per confidence bin of the last evaluation.

The trainer writes ``reliability.json`` / ``reliability.png`` into the run folder from these (the
``ReliabilityDiagram`` callback); the report reads them back. Neither needs the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .evaluation import EvalSums
from .runs import write_figure

__all__ = ["reliability_bins", "save_reliability_diagram"]


def reliability_bins(sums: EvalSums) -> dict[str, Any]:
    """Per-bin count, mean confidence and accuracy from evaluation sums (:func:`evaluation.evaluate`).

    Returns a JSON-safe dict: ``edges`` (n_bins + 1), ``count``, ``confidence`` and ``accuracy`` (None for an
    empty bin), ``ece`` (percent) and ``n``.
    """
    count = [float(v) for v in sums.bin_count]
    conf = [float(v) for v in sums.bin_conf_sum]
    acc = [float(v) for v in sums.bin_acc_sum]
    if not len(count) == len(conf) == len(acc):
        raise ValueError(
            f"evaluation sums hold {len(count)} bin counts, {len(conf)} confidence sums and {len(acc)} accuracy "
            "sums; each needs one value per bin"
        )
    n_bins = len(count)
    n = float(sums.n)
    return {
        "edges": [i / n_bins for i in range(n_bins + 1)],
        "count": [int(c) for c in count],
        "confidence": [cf / c if c else None for cf, c in zip(conf, count, strict=True)],
        "accuracy": [a / c if c else None for a, c in zip(acc, count, strict=True)],
        "ece": 100.0 * sum(abs(a - cf) for a, cf in zip(acc, conf, strict=True)) / n if n else None,
        "n": int(n),
    }


def save_reliability_diagram(bins: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Reliability diagram (Guo et al., 2017): accuracy per confidence bin vs the diagonal, with bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = bins["edges"]
    width = edges[1] - edges[0]
    centres = [e + width / 2 for e in edges[:-1]]
    acc = [a if a is not None else 0.0 for a in bins["accuracy"]]
    conf = [c if c is not None else m for c, m in zip(bins["confidence"], centres, strict=True)]
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(4.5, 5.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.bar(centres, acc, width=width, edgecolor="black", linewidth=0.5, label="accuracy")
    ax.bar(
        centres,
        [c - a for a, c in zip(acc, conf, strict=True)],
        bottom=acc,
        width=width,
        color="red",
        alpha=0.3,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ece = bins.get("ece")
    ax.set_title(f"{title}  ECE {ece:.2f}%" if ece is not None else title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    axc.bar(centres, bins["count"], width=width, color="gray")
    axc.set_xlabel("confidence (max softmax)")
    axc.set_ylabel("samples")
    axc.set_xlim(0, 1)
    fig.tight_layout()
    write_figure(path, fig, dpi=100)
    plt.close(fig)
