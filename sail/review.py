"""What a reviewer reads: HTML renders of the executed notebooks, an index, and a scan for noise.

Reviewers open `outputs/<profile>/` without running anything. `sail run` writes, next to each
executed notebook, its HTML render and its small results (`results/<stem>.json`), and keeps
`index.html` current: one row per notebook with its status, time and headline numbers.
`problems` lists what a reviewer should never have to read past: errors, the running machine's
absolute paths, progress-bar fragments, warnings or logs on stderr that nobody decided to accept.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import nbformat

# An absolute path on some machine (/home/..., /work/..., C:\...), not a URL's path or a ratio.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\-])/(?:[\w.-]+/)+[\w.-]*|\b[A-Za-z]:\\[\w.-]")
PROGRESS_FRAGMENT = re.compile(r"\r|\d+%\|")
# Text on stderr (warnings, library logs) a reviewer may see in a reference run, as patterns
# mapped to why each is accepted. Empty: none is; harmless noise is silenced where it starts.
ACCEPTED_STDERR: dict[str, str] = {}


def _output_texts(output: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(kind, text) of everything an output shows as text."""
    if output.get("output_type") == "stream":
        yield output.get("name", "stream"), "".join(output.get("text", ""))
    elif output.get("output_type") == "error":
        yield "error", f"{output.get('ename')}: {output.get('evalue')}"
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime == "application/json":
            yield mime, value if isinstance(value, str) else json.dumps(value)


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """Everything in an executed notebook that a clean reference run must not show."""
    found = []
    paths = {name: nb.metadata.get("papermill", {}).get(name) for name in ("input_path", "output_path")}
    for name, value in paths.items():
        if isinstance(value, str) and ABSOLUTE_PATH.match(value):
            found.append(f"metadata: papermill {name} is absolute: {value}")
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            for kind, text in _output_texts(output):
                where = f"cell {index} ({kind})"
                if kind == "error":
                    found.append(f"{where}: error output {text[:120]}")
                if match := ABSOLUTE_PATH.search(text):
                    found.append(f"{where}: absolute path {match[0]!r}")
                if fragments := len(PROGRESS_FRAGMENT.findall(text)):
                    found.append(f"{where}: {fragments} progress-bar fragments")
                if kind == "stderr" and not any(re.search(pattern, text) for pattern in ACCEPTED_STDERR):
                    found.append(f"{where}: stderr output {(text.strip().splitlines() or [''])[0][:120]!r}")
    return found


def code_sources(nb: nbformat.NotebookNode) -> list[str]:
    """The code cells as written, without the cell papermill injects for the run's parameters."""
    return [
        cell.source
        for cell in nb.cells
        if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", [])
    ]


def render_html(notebook: Path) -> Path:
    """`<stem>.html` beside the executed notebook, figures embedded, readable without Jupyter."""
    from nbconvert import HTMLExporter  # imported here: it costs a second

    exporter = HTMLExporter()
    exporter.log.setLevel("ERROR")  # it warns that matplotlib figures carry no alt text: true of every plot
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def _number(value: Any) -> str:
    """A headline number as its notebook rounded it: at most four significant digits, no zeros padded
    on (0.1 stays "0.1", never "0.100")."""
    if isinstance(value, list):
        return ", ".join(_number(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{html.escape(str(key))} {_number(item)}" for key, item in value.items())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return html.escape(str(value))
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{cells}</tr>\n{body}</table>"


def _where(manifest: Mapping[str, Any]) -> str:
    """The run's commit, date and machine, from its manifest."""
    git = manifest.get("git", {})
    machine = manifest.get("machine") or {}
    commit = str(git.get("commit", "unknown"))[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    parts = [
        f"commit <code>{html.escape(commit)}</code>",
        f"written {html.escape(str(manifest.get('written_at', 'unknown')))}",
    ]
    if machine:
        parts.append(
            f"CPU {html.escape(str(machine.get('cpu')))}, ATen kernels {html.escape(str(machine.get('isa')))}, "
            f"{machine.get('threads')} threads on {machine.get('cores')} cores, "
            f"GPU {html.escape(str(machine.get('gpu') or 'none'))}"
        )
    return "; ".join(parts)


def _claims_section(claims: Mapping[str, Any]) -> str:
    if not claims:
        return "<p>No claims yet: notebook 09 writes <code>claims.json</code>.</p>"
    rows = claims["claims"]
    # a claims.json written before verdicts were counted in it: count them here
    counts = claims.get("counts") or Counter(row["verdict"] for row in rows)
    summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
    table = _table(
        ["claim", "verdict", "ours", "paper", "why"],
        ([row["id"], row["verdict"], row["ours"], row["paper"], row["why"]] for row in rows),
    )
    return (
        f"<h2>The paper's claims</h2><p>{len(rows)} claims: {html.escape(summary)}. "
        f"Rules: {html.escape(claims.get('rule', ''))}.</p>\n{table}"
    )


def _final_section(paper: Mapping[str, Any]) -> str:
    final = paper.get("final_model")
    if not final:
        return ""
    table = _table(final["columns"], ([row[c] for c in final["columns"]] for row in final["rows"]))
    means = final["averages"]
    return (
        f"<h2>The final model ({html.escape(final['checkpoint'])}): Table 1 beside its blind level</h2>\n{table}"
        f"<p>Overall (mean over the {means['benchmarks']} benchmarks): {means['overall']}, blind level "
        f"{means['blind overall']}; mean of the {means['groups']} group averages: {means['group mean']}, blind level "
        f"{means['blind group mean']}.</p>"
    )


def write_index(out_dir: Path, profile: str, entries: Mapping[str, Mapping[str, Any]]) -> Path:
    """`index.html`, a reviewer's dashboard: where and from which commit the run came (its
    manifest), the claims table (`claims.json`), the final model's Table 1 row beside its blind
    level (notebook 09's results), links to the results, and each notebook's render, status, time,
    peak memory (all its processes together) and headline numbers, in numeric order."""
    rows = []
    for stem, entry in sorted(entries.items()):
        headline = _read(out_dir / "results" / f"{stem}.json").get("headline", {})
        numbers = "<br>".join(f"{html.escape(name)}: {_number(value)}" for name, value in headline.items())
        link = f'<a href="{html.escape(stem)}.html">{html.escape(stem)}</a>'
        seconds, memory = entry.get("duration_s"), entry.get("peak_memory_mb")
        status = html.escape(entry["status"] + (f": {entry['error']}" if entry.get("error") else ""))
        rows.append(
            f"<tr><td>{link}</td><td>{status}</td><td>{'' if seconds is None else f'{seconds:.0f} s'}</td>"
            f"<td>{'' if memory is None else f'{memory:,} MB'}</td><td>{numbers}</td></tr>"
        )
    manifest = _read(out_dir / "manifest.json")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>sail: {html.escape(profile)} run</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.4em .8em;vertical-align:top;text-align:left}}</style></head>
<body><h1>sail · the {html.escape(profile)} profile's run</h1>
<p>{_where(manifest)}.</p>
<p><a href="claims.json">claims.json</a> · <a href="results/">results/</a> (each notebook's results JSON and the
model cards) · <a href="data_cards/">data_cards/</a> · <a href="manifest.json">manifest.json</a> (parameters and
packages) · <a href="../../README.md">README</a></p>
{_claims_section(_read(out_dir / "claims.json"))}
{_final_section(_read(out_dir / "results" / "09_paper.json"))}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>peak memory</th><th>headline numbers</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    target = out_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
