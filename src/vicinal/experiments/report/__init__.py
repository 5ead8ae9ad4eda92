"""Run folders -> tables and plots (``vicinal report``)."""

from .report import ReportError, find_runs, group_runs, load_run, make_report, mean_std, paper_number, paper_sources

__all__ = [
    "ReportError",
    "find_runs",
    "group_runs",
    "load_run",
    "make_report",
    "mean_std",
    "paper_number",
    "paper_sources",
]
