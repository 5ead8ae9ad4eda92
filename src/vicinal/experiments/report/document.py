"""One page for everything: run folders, figures and other table outputs -> ``report.md`` + self-contained HTML.

``make_document(inputs, out_dir)`` walks ``inputs`` (run folders, folders holding them, figure folders, single PNG,
JSON or markdown files) and writes:

* one table per paper table (runs grouped by their config's ``table``), built by
  :func:`vicinal.experiments.report.report.make_report` (whose CSV and plot land in ``out_dir/tables/<table>/``),
  with the paper's number beside every row that has one, the table's own sections (Table 2's layout, the
  ablation's findings, the data-size curve) and the regenerating command of every run;
* every figure (a ``<name>.png`` with its ``<name>.json`` from ``tasks/figures.py``: title and command), and any other
  PNG and markdown file found outside run folders;
* the machine and package versions of this process and of every run (from ``provenance.json``).

The HTML page embeds each PNG as base64, so it is one file that can be mailed or committed. Run it as
``python -m vicinal.experiments.report.document INPUT... --out DIR [--name NAME] [--tag]``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import platform
import re
import shlex
import shutil
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config_yaml import PLAIN_NAME, is_plain_name
from ..errors import RunError
from ..runs import Run, as_paths, provenance, read_provenance, write_text
from ..tasks import SCALES, TABLES, load_tables
from .report import ReportError, group_runs, load_run, make_report

__all__ = [
    "Document",
    "check_page_name",
    "collect",
    "environment",
    "environment_tag",
    "main",
    "make_document",
    "md_blocks",
]

PROG = "python -m vicinal.experiments.report.document"
MAX_PLOTTED_GROUPS = 12  # a test-error plot with more lines than this is unreadable; the CSV has the numbers


@dataclass
class Document:
    """What :func:`collect` found under the inputs."""

    runs: list[Path] = field(default_factory=list)
    figures: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)  # (png, its JSON payload or {})
    markdown: list[Path] = field(default_factory=list)


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


def _figure_meta(path: Path) -> dict[str, Any] | None:
    """The payload of a figure JSON (``{"figure": ..., "png": ...}``), or None for any other JSON."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(meta, dict) and "figure" in meta and isinstance(meta.get("png"), str):
        return meta
    return None


def _is_report_folder(folder: Path) -> bool:
    """A folder ``vicinal report`` wrote: its page and both CSV files."""
    return all((folder / f).is_file() for f in ("report.md", "report.csv", "runs.csv"))


def collect(inputs: str | Path | Iterable[str | Path], exclude: Path | None = None) -> Document:
    """Find run folders, figures (PNG + JSON), loose PNG and markdown files at or below ``inputs``.

    Files inside run folders are not collected separately (a run's plots belong to it), nor, in a folder that holds
    runs, the report folders written by ``vicinal report`` (the page rebuilds those tables from the runs); ``exclude``
    (the output folder) is skipped, so a document can be rebuilt in place.

    Raises:
        ReportError: an input does not exist, or nothing usable was found.
    """
    doc = Document()
    runs: set[Path] = set()
    pngs: set[Path] = set()
    metas: dict[Path, dict[str, Any]] = {}
    mds: set[Path] = set()
    excluded = exclude.resolve() if exclude is not None else None

    def skip(p: Path) -> bool:
        rp = p.resolve()
        return excluded is not None and (rp == excluded or excluded in rp.parents)

    inputs = as_paths(inputs, "inputs")
    for p in inputs:
        if not p.exists():
            raise ReportError(f"'{p}' does not exist")
        if p.is_file():
            files = [p]
        elif _is_run(p):
            runs.add(p.resolve())
            continue
        else:
            found_runs = {c.parent.resolve() for c in p.rglob("config.yaml") if not skip(c)}
            runs |= found_runs
            # reports `vicinal report` (or reproduce) wrote beside these runs: the page rebuilds their tables and
            # plots from the runs themselves, so their copies would only repeat them
            reports = {f.parent.resolve() for f in p.rglob("report.csv") if _is_report_folder(f.parent)}
            owned = found_runs | (reports if found_runs else set())
            files = [
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not skip(f) and not any(r in f.resolve().parents for r in owned)
            ]
        for f in files:
            suffix = f.suffix.lower()
            if suffix == ".png":
                pngs.add(f.resolve())
            elif suffix == ".json":
                meta = _figure_meta(f)
                if meta is not None:
                    metas[(f.parent / meta["png"]).resolve()] = meta
            elif suffix == ".md":
                mds.add(f.resolve())
            elif p.is_file():
                raise ReportError(f"'{f}' is not a run folder, PNG, figure JSON or markdown file")
    for png in metas:
        if not png.is_file():
            raise ReportError(f"figure file '{png}' named by its JSON does not exist")
        pngs.add(png)
    doc.runs = sorted(runs)
    doc.figures = [(png, metas.get(png, {})) for png in sorted(pngs)]
    doc.markdown = sorted(mds)
    if not (doc.runs or doc.figures or doc.markdown):
        raise ReportError(f"no run folders, figures or markdown files in {', '.join(str(i) for i in inputs)}")
    return doc


# -- environment ----------------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """This machine and the package versions of this process (from :func:`vicinal.experiments.runs.provenance`,
    the one that every run folder records, plus the processor)."""
    cuda = torch.cuda.is_available()
    prov = provenance(device="cuda" if cuda else "cpu")
    return {
        "hostname": prov["hostname"],
        "platform": prov["platform"],
        "processor": platform.processor() or platform.machine(),
        "cpu_count": prov["cpu_count"],
        "device": prov["device_name"] if cuda else "cpu",
        "versions": prov["versions"],
    }


def environment_tag(env: dict[str, Any] | None = None) -> str:
    """A file-name-safe tag of the environment: ``cpu2-x86_64-torch2.14.1`` or ``NVIDIA-H100-...-torch2.14.1``."""
    env = env if env is not None else environment()
    where = f"cpu{env['cpu_count']}-{platform.machine()}" if env["device"] == "cpu" else str(env["device"])
    tag = f"{where}-torch{env['versions'].get('torch')}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tag).strip("-")


def _provenance(run: Path) -> dict[str, Any]:
    """The run's ``provenance.json``, or {} when it is absent or corrupt (the page still lists the run)."""
    try:
        prov = read_provenance(run)
    except RunError:
        return {}
    return prov if isinstance(prov, dict) else {}


def _command(run: Path, prov: dict[str, Any]) -> str:
    """The command line that produced a run (from its provenance), or the one that retrains it from its config."""
    argv = prov.get("argv")
    if isinstance(argv, list) and argv:
        exe = Path(str(argv[0])).name
        head = ["vicinal"] if exe in ("vicinal", "__main__.py") else [str(argv[0])]
        return shlex.join(head + [str(a) for a in argv[1:]])
    return f"vicinal train {shlex.quote(str(run / 'config.yaml'))} --out OUT"


# -- rendering ------------------------------------------------------------------------------------------------
# A document is a list of blocks, rendered twice (markdown and HTML) so the two pages always agree.
Block = tuple[Any, ...]


def _inline_html(text: str) -> str:
    """Escape, then the two inline markdown forms this module writes: **bold** and `code`."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


_SEPARATOR = re.compile(r"\|?(\s*:?-+:?\s*\|)*\s*:?-+:?\s*\|?")


def _table_html(md: str) -> str:
    rows = []
    for line in md.strip().splitlines():
        line = line.strip()
        if not line or _SEPARATOR.fullmatch(line):  # the |---|---| line under the header
            continue
        cells = re.split(r"(?<!\\)\|", line.removeprefix("|").removesuffix("|"))  # split on unescaped pipes
        rows.append([c.replace("\\|", "|") for c in cells])
    if not rows:
        return ""
    head = "".join(f"<th>{_inline_html(c.strip())}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_inline_html(c.strip())}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_IMAGE_LINE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _local_png(base: Path | None, ref: str) -> Path | None:
    """The PNG file a relative image link of a markdown file in ``base`` names, if it exists."""
    if base is None or Path(ref).is_absolute() or not ref.lower().endswith(".png"):
        return None
    target = base / ref
    return target.resolve() if target.is_file() else None


def md_blocks(text: str, shift: int = 0, base: Path | None = None) -> list[Block]:
    """Parse the markdown subset the lab writes (headings, pipe tables, ``-`` lists, code fences, paragraphs, and
    images on a line of their own).

    Headings are demoted by ``shift`` levels (a table's own ``#`` title sits under the document's ``##``). An image
    whose relative path names a PNG file under ``base`` (the markdown file's folder) becomes an image block, which
    the page places beside itself; anything else is kept as paragraph text, which the HTML page escapes: no markdown
    input can inject HTML.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("p", " ".join(line.strip() for line in para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append(("code", "\n".join(lines[i + 1 : j])))
            i = j + 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        image = _IMAGE_LINE.fullmatch(stripped)
        picture = _local_png(base, image.group(2)) if image else None
        if image and picture is not None:
            flush()
            blocks.append(("img", picture, image.group(1)))
        elif heading:
            flush()
            blocks.append(("h", min(len(heading.group(1)) + shift, 6), heading.group(2).strip()))
        elif stripped.startswith("|"):
            flush()
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            blocks.append(("table", "\n".join(lines[i:j])))
            i = j
            continue
        elif re.match(r"^[-*]\s+", stripped):
            flush()
            items = []
            while i < len(lines) and re.match(r"^[-*]\s+", lines[i].strip()):
                items.append(re.sub(r"^[-*]\s+", "", lines[i].strip()))
                i += 1
            blocks.append(("ul", items))
            continue
        elif not stripped:
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return blocks


def _render_md(blocks: Sequence[Block], images: dict[Path, str]) -> str:
    parts: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            parts.append("#" * b[1] + " " + b[2])
        elif kind in ("p", "table"):
            parts.append(b[1].rstrip())
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "code":
            parts.append("```\n" + b[1].rstrip() + "\n```")
        elif kind == "img":
            parts.append(f"![{b[2]}]({images[b[1]]})\n\n*{b[2]}*")
        elif kind == "details":
            parts.append(f"<details><summary>{b[1]}</summary>\n\n{_render_md(b[2], images)}\n</details>")
    return "\n\n".join(parts) + "\n"


def _render_html(blocks: Sequence[Block], title: str) -> str:
    def render(bs: Sequence[Block]) -> str:
        out = []
        for b in bs:
            kind = b[0]
            if kind == "h":
                out.append(f"<h{b[1]}>{_inline_html(b[2])}</h{b[1]}>")
            elif kind == "p":
                out.append(f"<p>{_inline_html(b[1])}</p>")
            elif kind == "table":
                out.append(_table_html(b[1]))
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in b[1]) + "</ul>")
            elif kind == "code":
                out.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
            elif kind == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                out.append(
                    f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_inline_html(b[2])}</figcaption></figure>"
                )
            elif kind == "details":
                out.append(f"<details><summary>{_inline_html(b[1])}</summary>{render(b[2])}</details>")
        return "\n".join(out)

    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px}"
        "th{background:#f3f3f3}pre{background:#f6f6f6;padding:0.6em;overflow-x:auto;white-space:pre-wrap}"
        "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:0.9em;color:#555}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{render(blocks)}\n</body></html>\n"
    )


# -- the document ---------------------------------------------------------------------------------------------
def _run_scale(run: Run) -> str:
    """The scale a run was trained at: what its config records (a GAN run writes ``scale``: GAN names carry none),
    else the name rule of the trainer tables (cpu configs are named ``...-cpu``). UCI runs record no scale and fall
    to "paper", which is right: the uci table's two scales are one protocol."""
    recorded = run.config.get("scale")
    if recorded in SCALES:
        return str(recorded)
    return "cpu" if run.name.endswith("-cpu") else "paper"


def _reproduce_command(table: str, runs: Sequence[Run], drawn: Sequence[Run] = ()) -> str | None:
    """``vicinal reproduce TABLE --scale S`` when ``table`` is registered (cpu when every run is at cpu scale), with
    ``--out`` when the runs and those it draws on (``drawn``) lie in one folder (``OUT/name/seedK``: a table that
    draws on another's runs, as the data-size curve on cifar's, reuses them only there) and ``--seeds N`` when every row has N seeds, not the default;
    neither for a table with its own runner (gan, uci), whose folders and seeds follow its own layout."""
    if table not in TABLES:
        return None
    scale = "cpu" if all(_run_scale(r) == "cpu" for r in runs) else "paper"
    command = f"vicinal reproduce {table} --scale {scale}"
    t = TABLES[table]
    if t.runner is not None:  # its own layout under --out (gan: OUT/runs/NAME/seedK) and its own seed rule
        return command
    folders = {r.path.parent.parent for r in (*runs, *drawn)}  # the runs it draws on are reused only there
    if len(folders) == 1:
        command += f" --out {shlex.quote(str(folders.pop()))}"
    seeds: dict[str, int] = {}
    for r in runs:
        seeds[r.name] = seeds.get(r.name, 0) + 1
    if t.row_seeds is None and len(set(seeds.values())) == 1:
        n = next(iter(seeds.values()))
        if n != t.default_seeds.get(scale, 1):
            command += f" --seeds {n}"
    return command


def _table_blocks(
    table: str, runs: list[Path], out_dir: Path, *, drawn: Sequence[Path] = (), sections: Collection[str] | None = None
) -> list[Block]:
    """The block of ``table``: its ``runs`` (with ``drawn``, the runs of the tables it draws on, in the report) and
    the sections of the tables named in ``sections``."""
    label = table or "runs without a table"
    tdir = out_dir / "tables" / (table or "other")
    result = make_report([*runs, *drawn], tdir, sections=sections)
    # report.py's page minus its title; the paper column and its source come from the table (Table.paper).
    text = result["markdown"].split("\n", 1)[1] if result["markdown"].startswith("# ") else result["markdown"]
    blocks: list[Block] = [("h", 2, f"Table: {label}"), *md_blocks(text, shift=2, base=tdir)]
    blocks.append(
        ("p", f"CSV: `{(tdir / 'report.csv').relative_to(out_dir)}` (per row), `runs.csv` beside it (per run).")
    )
    loaded = [load_run(r) for r in runs]
    if len(result["groups"]) <= MAX_PLOTTED_GROUPS:
        plot = tdir / "test_error.png"
        blocks.append(("img", plot, f"{label}: test error against epochs (mean over seeds, band min-max)"))
    reproduce = _reproduce_command(table, loaded, [load_run(r) for r in drawn]) if table else None
    if reproduce:
        blocks.append(("p", f"Regenerate the whole table: `{reproduce}` (then this page, see the end)."))
    lines = ["| run | seed | status | median of last 10 (%) | command |", "|---|---|---|---|---|"]
    for g in group_runs(loaded):
        for r in g.runs:
            med = r.summary.get("median_last10_test_error")
            cmd = _command(r.path, _provenance(r.path)).replace("|", "\\|")
            cell = "-" if med is None else f"{med:.2f}"
            lines.append(f"| {g.name} | {r.seed} | {r.status} | {cell} | `{cmd}` |")
    blocks.append(("details", f"{len(runs)} runs of {label}: status and the command that produced each", [
        ("table", "\n".join(lines))
    ]))  # fmt: skip
    return blocks


def _place_images(blocks: list[Block], out_dir: Path, images: dict[Path, str], placed: dict[Path, Path]) -> list[Block]:
    """Every image of the page inside ``out_dir``: a file already there stays, any other is copied into
    ``figures/`` under a name no other image of this page has (the shortest tail of its path that is free, so three
    reports' ``test_error.png`` stay three files). ``images`` maps each to its link, ``placed`` each copy to its
    source."""
    out_dir = out_dir.resolve()
    result: list[Block] = []
    for b in blocks:
        if b[0] == "details":
            result.append((*b[:2], _place_images(b[2], out_dir, images, placed)))
            continue
        if b[0] != "img":
            result.append(b)
            continue
        src = Path(b[1]).resolve()
        target = src
        if out_dir not in src.parents:
            fig_dir = out_dir / "figures"
            fig_dir.mkdir(parents=True, exist_ok=True)
            parts = src.parts[1:]
            names = ["-".join(parts[-k:]) for k in range(1, len(parts) + 1)]
            names += [f"{src.stem}-{i}{src.suffix}" for i in range(2, 2 + len(blocks))]
            target = next(fig_dir / n for n in names if placed.get(fig_dir / n, src) == src)
            placed[target] = src
            shutil.copyfile(src, target)
        images[target] = str(target.relative_to(out_dir))
        result.append(("img", target, *b[2:]))
    return result


def _environment_blocks(runs: Sequence[Path]) -> list[Block]:
    env = environment()
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    blocks: list[Block] = [
        ("h", 2, "Machine and versions"),
        (
            "p",
            f"This page was built on {env['hostname']} ({env['platform']}, {env['processor']}, "
            f"{env['cpu_count']} CPUs, device {env['device']}) with {versions}.",
        ),
    ]
    seen: dict[tuple[str, ...], list[str]] = {}
    for run in runs:
        prov = _provenance(run)
        if not prov:
            continue
        v = prov.get("versions", {}) or {}
        key = (
            str(prov.get("hostname")),
            str(prov.get("platform")),
            f"{prov.get('device')} ({prov.get('device_name')})",
            str(prov.get("cpu_count")),
            str(prov.get("torch_threads")),
            f"torch {v.get('torch')}, python {v.get('python')}, vicinal {v.get('vicinal')}",
            f"{prov.get('git_commit')}{' (dirty)' if prov.get('git_dirty') else ''}",
        )
        seen.setdefault(key, []).append(run.name)
    if seen:
        lines = [
            "| host | platform | device | CPUs | torch threads | versions | git commit | runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for host, names in seen.items():
            lines.append("| " + " | ".join(host) + f" | {len(names)} |")
        blocks += [("p", "The runs were trained on:"), ("table", "\n".join(lines))]
    return blocks


def check_page_name(name: str, what: str = "page name") -> None:
    """Raise ReportError unless ``name`` is a plain file stem: the pages are ``<name>.md`` and ``<name>.html`` in
    the output folder, so a separator would write elsewhere (or fail) and a leading dot would hide them."""
    if not is_plain_name(name):
        raise ReportError(f"{what} {name!r} must be a plain file stem: {PLAIN_NAME}")


def make_document(
    inputs: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    *,
    name: str = "report",
    title: str = "vicinal: reproduction of mixup (Zhang et al., ICLR 2018)",
    command: str | None = None,
) -> dict[str, Any]:
    """Gather run folders, figures and markdown outputs into ``out_dir/<name>.md`` and ``out_dir/<name>.html``.

    Args:
        inputs: run folders, folders holding run folders or figures, PNG / figure JSON / markdown files.
        out_dir: output folder (created). Tables' CSV and plots go to ``out_dir/tables/``, figures are copied to
            ``out_dir/figures/`` (the markdown page links them; the HTML page embeds them).
        name: file stem of the two pages (e.g. ``"report-" + environment_tag()``).
        title: the page title.
        command: the command line to show as this page's regenerating command (default: this module's CLI).

    Returns:
        ``{"markdown": str, "html": str, "files": [md, html], "tables": [table names], "figures": [png paths]}``.
    """
    check_page_name(name)
    inputs = as_paths(inputs, "inputs")
    out_dir = Path(out_dir)
    doc = collect(inputs, exclude=out_dir)
    load_tables()  # each table's paper column and sections
    out_dir.mkdir(parents=True, exist_ok=True)
    images: dict[Path, str] = {}
    blocks: list[Block] = [("h", 1, title)]
    by_table: dict[str, list[Path]] = {}
    for run in doc.runs:
        by_table.setdefault(str(load_run(run).config.get("table", "") or ""), []).append(run)
    tables = sorted(by_table, key=lambda t: (t == "", t))
    n_fig = len(doc.figures)
    contents = [f"table {t or '(none)'}" for t in tables] + [f"{n_fig} figure{'s' * (n_fig != 1)}"] * bool(n_fig)
    blocks.append(("p", f"Contents: {', '.join(contents + ['machine and versions'])}."))
    for table in tables:
        # a table that draws on another's runs (datasize and adversarial on cifar's) gets them in its block, and
        # its sections appear there alone: each table's sections in the block of that table, where it has one
        draws_on = TABLES[table].draws_on if table in TABLES else ()
        drawn = [run for other in draws_on for run in by_table.get(other, [])]
        # with no block of its own, a table's sections go to the block of the table it draws on (Table 3 and the
        # data-size curve under cifar when only cifar's runs are here), once
        hosted = {t.name for t in TABLES.values() if t.name not in by_table and table in t.draws_on}
        own = {table} & TABLES.keys()  # runs of no table (or of one not registered here) have no sections
        blocks += _table_blocks(table, by_table[table], out_dir, drawn=drawn, sections=own | hosted)
    if doc.figures:
        blocks.append(("h", 2, "Figures"))
        for png, meta in doc.figures:
            caption = str(meta.get("title") or png.stem)
            blocks += [("h", 3, caption), ("img", png, f"{caption} ({png})")]
            if meta.get("command"):
                blocks.append(("code", str(meta["command"])))
    for md in doc.markdown:
        blocks += [("h", 2, f"From {md}"), *md_blocks(md.read_text(encoding="utf-8"), shift=2, base=md.parent)]
    blocks += _environment_blocks(doc.runs)
    if command is None:
        command = " ".join([PROG, *(shlex.quote(str(p)) for p in inputs), "--out", shlex.quote(str(out_dir))])
        command += f" --name {shlex.quote(name)}" if name != "report" else ""
    blocks += [("h", 2, "This page"), ("code", command)]

    blocks = _place_images(blocks, out_dir, images, {})
    markdown = _render_md(blocks, images)
    page = _render_html(blocks, title)
    md_path, html_path = out_dir / f"{name}.md", out_dir / f"{name}.html"
    write_text(md_path, markdown)
    write_text(html_path, page)
    return {
        "markdown": markdown,
        "html": page,
        "files": [md_path, html_path],
        "tables": tables,
        "figures": [png for png, _ in doc.figures],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vicinal.experiments.report.document INPUT... --out DIR [--name NAME] [--tag]``."""
    parser = argparse.ArgumentParser(prog=PROG, description="Run folders, figures and tables -> one page.")
    parser.add_argument("inputs", nargs="+", type=Path, help="run folders, figure folders, PNG/JSON/markdown files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="report", help="file stem of the pages (default report)")
    parser.add_argument("--tag", action="store_true", help="append the environment tag to --name")
    args = parser.parse_args(argv)
    name = f"{args.name}-{environment_tag()}" if args.tag else args.name
    result = make_document(args.inputs, args.out, name=name)
    print(f"written: {', '.join(str(f) for f in result['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
