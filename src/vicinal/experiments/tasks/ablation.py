"""The ``ablation`` table: Table 5 of the paper (Section 3.8), design choices of mixup on CIFAR-10.

20 methods at weight decay 1e-4 and 5e-4: the paper's 22 rows of Table 5 less three of its four "mix inputs +
label smoothing (AC+RP)" rows (one is run, see below), plus mixup AC+RP at alpha 0.5. PreAct ResNet-18 on
CIFAR-10, reported as the median test error of the last 10 epochs (``median_last10_test_error`` of
``summary.json``). The configs are two sweeps, ``configs/ablation/{cpu,paper}.yaml`` (method x weight decay,
expanded in memory); :data:`ROWS` names the methods and their families, which the findings compare.

Choices the paper's text does not fix (the configs point here for them):

* mixup AC+RP is run at alpha 0.5 and 1 (the exact alpha grid of Table 5 is not verified here);
* every other mixing row uses alpha 1 (the Section 3.2 value); "mix inputs + label smoothing" uses alpha 1 and
  eps 0.1 (the paper lists four rows for it whose specifications did not survive the text extraction);
* Gaussian noise is added to inputs in [0, 1] pixel space (before the model's normalisation);
* KNN: ``mix.knn_k`` nearest neighbours on raw pixels (paper: 200, among the 5,000 images of the sample's class
  for SC, among all 50,000 for AC).

:func:`ablation_findings` checks the paper's four findings on a set of run folders; the report shows them (the
table's ``sections``), and pairs every row with ERM at the same weight decay (``Table.baseline``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..recipe import split_by_provenance
from ..stats import Paired, paired
from .registry import Table, config_files, register_table

__all__ = [
    "ABLATION",
    "PAPER_ABLATION",
    "PAPER_ABLATION_SOURCE",
    "ROWS",
    "WEIGHT_DECAYS",
    "AblationRow",
    "Finding",
    "ablation_configs",
    "ablation_findings",
    "findings_markdown",
    "row_errors",
    "row_seed_errors",
]

WEIGHT_DECAYS: tuple[float, ...] = (1e-4, 5e-4)
# Each scale's recipe is the cifar table's config of that scale (``base:`` in configs/ablation/<scale>.yaml), so a fix
# to the CIFAR recipe reaches the ablation: paper = Section 3.2's settings; cpu = the regime where ERM fits its
# training set (2,000 images, 150 epochs; the rule is stated in configs/cifar/cpu/cifar10-preact_resnet18-erm.yaml).
# A row changes only the weight decay and the mixing; KNN rows use 200 neighbours (paper) or 8 (cpu: 4% of the 200
# images per class, as 200 is 4% of CIFAR-10's 5,000 per class).
CPU_K = 8
# The cpu scale (configs/ablation/cpu.yaml) runs the rows the regime issue asks for first (ERM, mixup AC+RP, SC+RP,
# AC+KNN, mix inputs only, label smoothing, mix inputs + label smoothing, Gaussian noise, one latent layer), at both
# weight decays: 18 runs per seed at ~13 CPU-minutes each. The other rows run at paper scale.
CPU_ROWS = (
    "erm",
    "mixup-acrp-a1",
    "mixup-acknn",
    "mix-inputs-only-sc-rp",
    "mix-inputs-only-ac-rp",
    "label-smoothing-eps0.1",
    "mix-inputs-label-smoothing",
    "gaussian-noise-sigma0.1",
    "latent-layer1",
)
CPU_NOTES = (
    "cpu scale: the cifar table's cpu recipe (PreAct ResNet-18 at width 16, 2,000 training images drawn per seed, "
    "the full test set, 150 epochs, lr 0.1 /10 at 75 and 112, batch 128, crop + flip; ERM fits its training set), "
    f"test error every 25 epochs and after each of the last 10; the rows {', '.join(CPU_ROWS)} at weight decay "
    f"1e-4 and 5e-4; KNN rows use {CPU_K} neighbours (4% of a class, as 200 of 5,000). ~13 CPU-minutes per run, 18 "
    "runs per seed, 2 seeds by default (~8 CPU-hours); two processes running the same command share the runs."
)


@dataclass(frozen=True)
class AblationRow:
    """One method row of Table 5 (run at each weight decay); its config is the row ``key`` of the ablation sweeps.

    Attributes:
        key: row key without the weight decay ("mixup-acrp-a1"); the config's ``row`` is ``key/wd<wd>``.
        family: "erm", "mixup", "mixup_knn", "latent", "mix_inputs_only", "label_smoothing",
            "mix_inputs_label_smoothing" or "gaussian_noise" (the paper's method groups).
        label: the row as Table 5 names it.
    """

    key: str
    family: str
    label: str


def _rows() -> tuple[AblationRow, ...]:
    rows = [AblationRow("erm", "erm", "ERM")]
    rows += [AblationRow(f"mixup-acrp-a{a:g}", "mixup", f"mixup AC+RP, alpha={a:g}") for a in (0.5, 1.0)]
    rows.append(AblationRow("mixup-acknn", "mixup_knn", "mixup AC+KNN"))
    # Layer 1-4: the input of residual stage layer1..layer4; Layer 5: the input of pooling + linear ("head").
    rows += [
        AblationRow(f"latent-layer{k}", "latent", f"mix labels and latent representations (AC+RP), Layer {k}")
        for k in range(1, 6)
    ]
    for key, label in (("sc-knn", "SC+KNN"), ("ac-knn", "AC+KNN"), ("sc-rp", "SC+RP"), ("ac-rp", "AC+RP")):
        rows.append(AblationRow(f"mix-inputs-only-{key}", "mix_inputs_only", f"mix inputs only, {label}"))
    rows += [
        AblationRow(f"label-smoothing-eps{e:g}", "label_smoothing", f"label smoothing, eps={e:g}")
        for e in (0.05, 0.1, 0.2)
    ]
    rows.append(
        AblationRow(
            "mix-inputs-label-smoothing",
            "mix_inputs_label_smoothing",
            "mix inputs + label smoothing (AC+RP), alpha=1, eps=0.1",
        )
    )
    rows += [
        AblationRow(f"gaussian-noise-sigma{s:g}", "gaussian_noise", f"Gaussian noise on inputs, sigma={s:g}")
        for s in (0.05, 0.1, 0.2)
    ]
    return tuple(rows)


ROWS: tuple[AblationRow, ...] = _rows()
_BY_KEY = {r.key: r for r in ROWS}


def _wd_tag(wd: float) -> str:
    return f"wd{wd:.0e}".replace("e-0", "e-")  # 1e-4 -> "wd1e-4"


def row_key(row: AblationRow, wd: float) -> str:
    """The config's ``row``: ``"<key>/wd1e-4"``."""
    return f"{row.key}/{_wd_tag(wd)}"


# Published numbers (percent, median of the last 10 epochs): only the ERM and mixup rows are verified, from the
# first author's repository (paper/EXPERIMENTS.md 3.2); its mixup runs use alpha 1.
PAPER_ABLATION: dict[str, float] = {
    "erm/wd1e-4": 5.53,
    "erm/wd5e-4": 5.18,
    "mixup-acrp-a1/wd1e-4": 4.24,
    "mixup-acrp-a1/wd5e-4": 4.68,
}
PAPER_ABLATION_SOURCE = (
    "median test error of the last 10 epochs, PreAct ResNet-18 on CIFAR-10, 200 epochs, from the first author's "
    "repository (paper/EXPERIMENTS.md 3.2); the other rows of Table 5 are not verified and have no paper column"
)


def ablation_configs(scale: str) -> list[Path]:
    """The configs of ``scale`` ("cpu" or "paper"): the rows of ``configs/ablation/<scale>.yaml``, sorted by name."""
    return config_files("ablation", scale)


# -- findings ---------------------------------------------------------------------------------------------------
@dataclass
class Finding:
    """One of the paper's claims, checked on measured numbers.

    Attributes:
        claim: the paper's statement.
        holds: True / False (the means over seeds are ordered as the paper says, or not), or None when the runs
            needed are missing.
        evidence: the numbers compared (mean over seeds of the median of the last 10 epochs, percent), and the
            paired differences.
        paired: the rows compared seed by seed, each as ``(label, difference)`` with the difference taken so that
            a negative value supports the claim (the row the paper puts ahead minus the other); empty when the
            findings were computed from means alone.
    """

    claim: str
    holds: bool | None
    evidence: str
    paired: tuple[tuple[str, Paired], ...] = ()

    @property
    def beyond_noise(self) -> bool | None:
        """Whether every paired difference's 95% interval lies below 0; None without two or more paired seeds."""
        if not self.paired or any(p.n < 2 for _, p in self.paired):
            return None
        return all(p.ci_high < 0 for _, p in self.paired)


def row_seed_errors(runs: Iterable[Any]) -> dict[str, dict[int | None, float]]:
    """``row -> {seed: median_last10_test_error}`` of the ablation runs among ``runs``.

    ``runs`` are loaded run folders (``runs.Run``: ``config`` as a dict, ``summary``, ``status``, ``seed``); only
    complete runs of table "ablation" count (an interrupted run's median is not comparable).
    """
    values: dict[str, dict[int | None, float]] = {}
    for run in runs:
        if run.config.get("table") != "ablation" or run.status != "complete":
            continue
        err = run.summary.get("median_last10_test_error")
        if err is None or not math.isfinite(float(err)):
            continue
        values.setdefault(str(run.config.get("row")), {})[run.seed] = float(err)
    return values


def row_errors(runs: Iterable[Any]) -> dict[str, tuple[float, int]]:
    """``row -> (mean over seeds of median_last10_test_error, n seeds)`` of :func:`row_seed_errors`."""
    return {row: (sum(v.values()) / len(v), len(v)) for row, v in row_seed_errors(runs).items()}


def _spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when a side is constant."""

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for t in range(i, j + 1):
                r[order[t]] = (i + j) / 2.0
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def ablation_findings(errors: dict[str, tuple[float, int]] | Iterable[Any]) -> list[Finding]:
    """Check the paper's four findings of Section 3.8.

    Each finding compares means over seeds. Given run folders, it also compares the two rows it rests on seed by
    seed (:attr:`Finding.paired`: at one seed both rows train on the same images from the same initial weights).

    Args:
        errors: :func:`row_errors`'s mapping, or loaded run folders (``runs.Run``) to compute it from.

    Returns:
        Four :class:`Finding` objects, in the paper's order:

        1. mixup is best: the best mixup AC+RP row (any alpha, either weight decay) beats the best row of every
           other method group (mixup AC+KNN and latent mixing count as other groups);
        2. mix inputs + label smoothing is second: among the groups that are not mixup variants (ERM, mix inputs
           only, label smoothing, mix inputs + label smoothing, Gaussian noise), its best row is the best;
        3. ERM prefers weight decay 5e-4 and mixup (AC+RP, alpha 1) prefers 1e-4;
        4. higher latent layers regularise less: the advantage of the larger weight decay,
           err(wd 1e-4) - err(wd 5e-4), grows with the layer (Spearman correlation over Layers 1-5 > 0).
    """
    per_seed: dict[str, dict[int, float]] = {}
    if not isinstance(errors, dict):
        seeded = row_seed_errors(errors)
        per_seed = {row: {s: e for s, e in v.items() if s is not None} for row, v in seeded.items()}
        errors = {row: (sum(v.values()) / len(v), len(v)) for row, v in seeded.items()}
    err = {row: float(v[0]) for row, v in errors.items()}
    n_of = {row: int(v[1]) for row, v in errors.items()}
    lo, hi = (_wd_tag(w) for w in WEIGHT_DECAYS)

    def fmt(row: str) -> str:
        return f"{row} {err[row]:.2f} (n={n_of[row]})"

    def compare(*pairs: tuple[str, str]) -> tuple[tuple[str, Paired], ...]:
        """``ahead - behind`` seed by seed for each (ahead, behind) pair of rows, where both have seeded runs."""
        out = []
        for ahead, behind in pairs:
            if ahead in per_seed and behind in per_seed:
                result = paired(per_seed[behind], per_seed[ahead])
                if result.n:
                    out.append((f"{ahead} - {behind}", result))
        return tuple(out)

    def finding(claim: str, holds: bool, evidence: str, *pairs: tuple[str, str]) -> Finding:
        compared = compare(*pairs)
        for label, result in compared:
            evidence += f"; paired {label}: {result.describe()}"
        return Finding(claim, holds, evidence, compared)

    def best(family: str) -> str | None:
        rows = [r for r in err if r.split("/")[0] in _BY_KEY and _BY_KEY[r.split("/")[0]].family == family]
        return min(rows, key=lambda r: err[r]) if rows else None

    findings: list[Finding] = []
    families = sorted({r.family for r in ROWS})
    bests = {f: best(f) for f in families}
    claim = "mixup (AC+RP) is the best method"
    others = {f: b for f, b in bests.items() if f != "mixup" and b is not None}
    if bests["mixup"] is None or not others:
        findings.append(Finding(claim, None, "needs mixup AC+RP runs and runs of at least one other method"))
    else:
        m = bests["mixup"]
        rival = min(others.values(), key=lambda r: err[r])
        findings.append(
            finding(claim, err[m] < err[rival], f"best mixup: {fmt(m)}; best other: {fmt(rival)}", (m, rival))
        )

    claim = "mix inputs + label smoothing is second (best of the methods that are not mixup variants)"
    plain = ("erm", "mix_inputs_only", "label_smoothing", "mix_inputs_label_smoothing", "gaussian_noise")
    candidates = {f: b for f in plain if (b := bests[f]) is not None}
    target = candidates.get("mix_inputs_label_smoothing")
    if target is None or len(candidates) < 2:
        findings.append(Finding(claim, None, "needs mix inputs + label smoothing runs and another method's runs"))
    else:
        rival = min((b for f, b in candidates.items() if f != "mix_inputs_label_smoothing"), key=lambda r: err[r])
        findings.append(
            finding(claim, err[target] < err[rival], f"{fmt(target)}; best other: {fmt(rival)}", (target, rival))
        )

    claim = "ERM prefers weight decay 5e-4, mixup (AC+RP, alpha 1) prefers 1e-4"
    need = [f"erm/{lo}", f"erm/{hi}", f"mixup-acrp-a1/{lo}", f"mixup-acrp-a1/{hi}"]
    if not all(r in err for r in need):
        findings.append(Finding(claim, None, f"needs rows {', '.join(need)}"))
    else:
        erm_ok = err[f"erm/{hi}"] < err[f"erm/{lo}"]
        mix_ok = err[f"mixup-acrp-a1/{lo}"] < err[f"mixup-acrp-a1/{hi}"]
        findings.append(
            finding(
                claim,
                erm_ok and mix_ok,
                f"ERM: {fmt(need[0])} vs {fmt(need[1])} ({'holds' if erm_ok else 'fails'}); "
                f"mixup: {fmt(need[2])} vs {fmt(need[3])} ({'holds' if mix_ok else 'fails'})",
                (need[1], need[0]),
                (need[2], need[3]),
            )
        )

    claim = "mixing higher latent layers regularises less (the larger weight decay helps more at higher layers)"
    layers = [k for k in range(1, 6) if f"latent-layer{k}/{lo}" in err and f"latent-layer{k}/{hi}" in err]
    if len(layers) < 3:
        findings.append(Finding(claim, None, "needs both weight decays for at least 3 of Layers 1-5"))
    else:
        # Rounded so that equal differences tie (4.4 - 4.5 and 4.6 - 4.7 differ in the last float bits).
        gains = [round(err[f"latent-layer{k}/{lo}"] - err[f"latent-layer{k}/{hi}"], 6) for k in layers]
        rho = _spearman([float(k) for k in layers], gains)
        detail = ", ".join(f"Layer {k}: {g:+.2f}" for k, g in zip(layers, gains, strict=True))
        findings.append(
            Finding(
                claim,
                None if math.isnan(rho) else rho > 0,
                f"err(wd 1e-4) - err(wd 5e-4) per layer: {detail}; Spearman rho {rho:.2f}",
            )
        )
    return findings


def findings_markdown(findings: Sequence[Finding]) -> str:
    """The findings as a markdown list: ``- **holds** claim: evidence``.

    A finding whose means are ordered as the paper says but whose paired 95% interval includes 0 reads "holds in
    direction only": the seeds do not separate the rows.
    """
    word = {True: "holds", False: "does not hold", None: "undetermined"}

    def verdict(f: Finding) -> str:
        if f.holds and f.beyond_noise is False:
            return "holds in direction only"
        return word[f.holds]

    return "\n".join(f"- **{verdict(f)}**: {f.claim}. {f.evidence}." for f in findings)


FINDINGS_NOTE = (
    "Each finding compares the rows' means over seeds of the median test error of the last 10 epochs; 'paired' "
    "gives the difference of the two rows seed by seed (same training images and initial weights at a seed), "
    "the row the paper puts ahead minus the other, so a negative difference supports the claim, with its 95% "
    "Student-t interval; 'holds in direction only': that interval includes 0."
)


def _baseline(row: str) -> str | None:
    """The report pairs every row with ERM at the same weight decay ("latent-layer1/wd5e-4" -> "erm/wd5e-4")."""
    key, _, wd = row.partition("/")
    return None if key == "erm" or not wd else f"erm/{wd}"


def _sections(runs: Sequence[Any], stats: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """The report's findings section (empty without ablation runs)."""
    mine = [r for r in runs if r.config.get("table") == "ablation"]
    if not mine:
        return []
    # The findings average each row's seeds. Runs of several configs under one row (a config derived with base:
    # keeps its parent's row) would be averaged together, a seed of one replacing the other's: such a row is left
    # out, and named.
    # Seeds of one config that ran on other data or with another number of processes are not one row either (the
    # main table splits them: `recipe.split_by_provenance`).
    by_row: dict[str, list[Any]] = {}
    for r in mine:
        by_row.setdefault(str(r.config.get("row")), []).append(r)
    left_out: dict[str, str] = {}  # row -> why
    for row, row_runs in sorted(by_row.items()):
        names = sorted({str(r.config.get("name")) for r in row_runs})
        if len(names) > 1:
            left_out[row] = (
                f"row {row} is claimed by runs of {len(names)} configs ({', '.join(names)}): left out of the "
                "findings; report them separately"
            )
        elif len(split_by_provenance(names[0], row_runs)) > 1:
            left_out[row] = (
                f"row {row}: its seeds ran on other data or with another number of processes (see the table): "
                "left out of the findings"
            )
    kept = [r for row, row_runs in by_row.items() if row not in left_out for r in row_runs]
    return [
        "",
        "## Table 5: the paper's findings at this scale",
        "",
        findings_markdown(ablation_findings(kept)),
        *(["", *(f"- {why}" for why in left_out.values())] if left_out else []),
        "",
        FINDINGS_NOTE,
    ]


ABLATION = register_table(
    Table(
        name="ablation",
        title="Table 5 (Section 3.8): CIFAR-10 PreAct ResNet-18 ablation, median test error of the last 10 epochs",
        configs=ablation_configs,
        default_seeds={"cpu": 2, "paper": 1},
        notes=CPU_NOTES,
        paper=PAPER_ABLATION,
        paper_source=PAPER_ABLATION_SOURCE,
        sections=_sections,
        baseline=_baseline,
    )
)
