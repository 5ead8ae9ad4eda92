"""Run folders -> tables and plots (``vicinal report``)."""

from .report import PAPER, PAPER_SOURCES, ReportError, find_runs, group_runs, load_run, make_report, mean_std

__all__ = ["PAPER", "PAPER_SOURCES", "ReportError", "find_runs", "group_runs", "load_run", "make_report", "mean_std"]
