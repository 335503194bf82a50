"""`sail run`: execute the numbered notebooks headless with papermill, one profile at a time.

Each notebook runs in a fresh kernel whose working directory is the notebook's folder (as in
JupyterLab), with parameters merged from `configs/profiles/<profile>.yaml` (its `common` section,
then the notebook's own section) and `-p NAME VALUE` overrides; `profile` itself is always passed.
The executed copy goes to `<output-dir>/<profile>/<stem>.ipynb`, and `manifest.json` beside it
records what ran, with which parameters, code and packages, and how long it took. For reviewers
who read without running anything, each executed notebook also gets an HTML render
(`<stem>.html`), its small results (`results/`: the notebook's results JSON and model cards) and a
row in `index.html`. Kernels run with `SAIL_HEADLESS=1` (see `sail.console`), so progress is
saved as a few plain lines rather than bar fragments. The first failure stops the run with one
line naming the notebook, the cell and the error.

Every parameter given (`-p`, or a profile file) must be one that a notebook declares in its
`parameters` cell: a typo stops the run before anything executes, naming the closest known
name. Each notebook receives only the parameters it declares, so `common` values reach the
notebooks that use them. One run writes only under `<output-dir>/<profile>/`: the runner sets
every notebook's `artifacts_dir` to `<output-dir>/<profile>/artifacts` (it cannot be overridden),
so a run into a fresh folder neither reads nor overwrites another run's artifacts.

The runner judges only the profile's form (a plain name, since it names a folder); an unknown
plain name reaches the notebook, whose `check_parameters` cell rejects it naming the valid ones.
"""

import argparse
import ast
import difflib
import json
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import yaml

from sail import review
from sail.console import HEADLESS_ENVIRONMENT
from sail.manifest import git_commit, write_manifest

REPO = Path(__file__).resolve().parents[1]
NUMBERED = "[0-9][0-9]_*.ipynb"
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
RUNNER_SET = ("profile", "artifacts_dir")  # parameters only the runner passes


class UsageError(Exception):
    """The command line or a profile file asks for something that does not exist."""


class _Loader(yaml.SafeLoader):
    """YAML as papermill reads parameter files (dates stay strings), plus `1e-4` read as a number."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def parse_value(text: str) -> Any:
    """A `-p` value as YAML (`3` → int, `true` → bool, `1e-4` → float); the empty string stays ""."""
    return yaml.load(text, Loader=_Loader) if text.strip() else text


def find_notebooks(names: Sequence[str], notebooks_dir: Path) -> list[Path]:
    """Resolve stems ("00_tour"), number prefixes ("00") or paths; no names means every numbered notebook."""
    numbered = sorted(notebooks_dir.glob(NUMBERED))
    if not names:
        if not numbered:
            raise UsageError(f"no notebooks matching {NUMBERED} in {notebooks_dir}")
        return numbered
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" or len(path.parts) > 1:
            if not path.is_file():
                raise UsageError(f"no such notebook: {name}")
            found.append(path.resolve())
            continue
        matches = [nb for nb in numbered if nb.stem == name] or [
            nb for nb in numbered if nb.stem.startswith(name + "_")
        ]
        if len(matches) != 1:
            known = ", ".join(nb.stem for nb in numbered) or "none"
            problem = "is ambiguous" if matches else "matches no notebook"
            raise UsageError(f"{name!r} {problem} in {notebooks_dir} (notebooks: {known})")
        found.append(matches[0])
    return found


def load_profile(configs_dir: Path, profile: str) -> dict[str, dict[str, Any]]:
    """`<profile>.yaml` as {section: {parameter: value}}; a profile without a file has no parameters."""
    path = configs_dir / f"{profile}.yaml"
    if not path.is_file():
        return {}
    sections = yaml.load(path.read_text(), Loader=_Loader) or {}
    if not isinstance(sections, dict) or not all(isinstance(s, dict) for s in sections.values() if s):
        raise UsageError(f"{path} must map sections (common, notebook stems) to parameter mappings")
    return {name: params or {} for name, params in sections.items()}


def declared_parameters(notebook: Path) -> list[str]:
    """The names the notebook's `parameters` cell assigns, read with `ast` (papermill's own parser
    skips lines that end in a comment); a notebook without such a cell declares none."""
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError as error:
                raise UsageError(f"{notebook}: its parameters cell is not valid Python ({error})") from None
            targets = [
                t
                for node in tree.body
                if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            ]
            return [t.id for t in targets if isinstance(t, ast.Name)]
    return []


def check_known(given: dict[str, Any], declared: set[str], where: str) -> None:
    """Raise UsageError for any name in `given` that no notebook declares, naming the closest known one."""
    problems = []
    for name in sorted(set(given) - declared):
        close = difflib.get_close_matches(name, sorted(declared), n=1)
        problems.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if problems:
        raise UsageError(f"unknown parameter{'s' if len(problems) > 1 else ''} {', '.join(problems)} {where}")


def check_parameter_names(
    notebooks: Sequence[Path],
    notebooks_dir: Path,
    sections: dict[str, dict[str, Any]],
    overrides: dict[str, Any],
    profile: str,
) -> dict[Path, list[str]]:
    """Every name given must be declared: `-p` ones by a notebook of this run, a profile's `common`
    ones by any numbered notebook, a notebook section's by that notebook. Returns what each declares."""
    declared = {notebook: declared_parameters(notebook) for notebook in {*notebooks, *notebooks_dir.glob(NUMBERED)}}
    stems = {notebook.stem for notebook in declared}
    unknown_sections = sorted(set(sections) - stems - {"common"})
    if unknown_sections:
        raise UsageError(
            f"{profile}.yaml has sections for no notebook: {', '.join(unknown_sections)} "
            f"(notebooks: {', '.join(sorted(stems))})"
        )

    def names(selected) -> set[str]:
        return {name for notebook in selected for name in declared[notebook]} - set(RUNNER_SET)

    check_known(
        overrides, names(notebooks), f"given with -p (not a parameter of {', '.join(nb.stem for nb in notebooks)})"
    )
    check_known(sections.get("common", {}), names(declared), f"in the common section of {profile}.yaml")
    for notebook in notebooks:
        check_known(
            sections.get(notebook.stem, {}), names([notebook]), f"in the {notebook.stem} section of {profile}.yaml"
        )
    return {notebook: declared[notebook] for notebook in notebooks}


def notebook_parameters(
    sections: dict[str, dict[str, Any]],
    stem: str,
    profile: str,
    overrides: dict[str, Any],
    declared: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Parameters for one notebook: common → the notebook's section → overrides, and the profile;
    when `declared` is given, only the names the notebook declares."""
    merged = {**sections.get("common", {}), **sections.get(stem, {}), **overrides, "profile": profile}
    return merged if declared is None else {k: v for k, v in merged.items() if k in declared}


def artifacts_parameter(out_dir: Path, notebook: Path) -> str:
    """`<out_dir>/artifacts` as the notebook (whose working directory is its folder) should see it:
    relative when both lie in the repository, so outputs name no machine's absolute paths."""
    artifacts = (out_dir / "artifacts").resolve()
    if artifacts.is_relative_to(REPO) and notebook.resolve().is_relative_to(REPO):
        return os.path.relpath(artifacts, notebook.resolve().parent)
    return str(artifacts)


def _shown(path: Path) -> str:
    """A path as the manifest stores it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _cell(index: int | None, count: int | None) -> str:
    return f"cell {index} (In [{count if count is not None else ' '}])"


def _executed(output: Path) -> nbformat.NotebookNode | None:
    """The notebook papermill wrote (also after a failure), or None if it wrote none."""
    return nbformat.read(output, as_version=4) if output.is_file() else None


def _last_started_cell(nb: nbformat.NotebookNode | None) -> str:
    """Where a run that died without a cell error stopped: the last cell papermill started."""
    started = [
        (i, cell.get("execution_count"))
        for i, cell in enumerate(nb.cells if nb else [])
        if cell.metadata.get("papermill", {}).get("start_time")
    ]
    return _cell(*started[-1]) if started else "before the first cell"


class PeakMemory:
    """The most resident memory this process and the descendants started while the block runs (the
    kernel, and whatever it starts: caption workers, launched training) held together, sampled.

    Descendants alive before the block are left out: the previous notebook's kernel may still be
    shutting down when the next notebook starts, and its memory is not the next one's."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_bytes = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._before: set[tuple[int, float]] = set()

    def __enter__(self) -> "PeakMemory":
        import psutil

        self._before = {_identity(p) for p in psutil.Process().children(recursive=True) if _identity(p)}
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            total = 0
            for process in (me, *me.children(recursive=True)):
                if process is not me and _identity(process) in self._before:
                    continue
                try:
                    total += process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):  # ended between listing and reading
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            if self._stop.wait(self.interval):
                return


def _identity(process) -> tuple[int, float] | None:
    """A process as (pid, start time): a pid alone may be reused. None once it has ended."""
    import psutil

    try:
        return process.pid, process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def execute(
    notebook: Path, output: Path, parameters: dict[str, Any], kernel: str, log_output: bool, timeout: int | None
) -> dict[str, Any]:
    """Run one notebook with papermill; return its manifest entry (status "ok", or "failed" with the error)."""
    import papermill  # imported here: it costs seconds, and `sail --help` should not
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    error = None
    with PeakMemory() as memory:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters,
                kernel_name=kernel,
                language="python",  # so notebooks saved without kernel metadata still run
                cwd=str(notebook.parent),
                log_output=log_output,
                progress_bar=not log_output,
                execution_timeout=timeout,
            )
        except PapermillExecutionError as e:
            error = f"{_cell(e.cell_index, e.exec_count)}: {e.ename}: {' '.join(str(e.evalue).split())}"
        except DeadKernelError:
            error = f"{_last_started_cell(_executed(output))}: the kernel died (out of memory?)"
        except CellTimeoutError:
            error = f"{_last_started_cell(_executed(output))}: still running after {timeout} s (--timeout)"
        except NoSuchKernel:
            error = f"no Jupyter kernel named {kernel!r}; `jupyter kernelspec list` shows the installed ones"
    nb = _executed(output)
    timing = nb.metadata.get("papermill", {}) if nb else {}
    return {
        "input": _shown(notebook),
        "output": _shown(output),
        "parameters": parameters,
        "status": "failed" if error else "ok",
        "error": error,
        "duration_s": timing.get("duration"),
        "start_time": timing.get("start_time"),
        "end_time": timing.get("end_time"),
        "peak_memory_mb": round(memory.peak_bytes / 2**20),
    }


def _tidy(output: Path, notebook: Path) -> None:
    """Store papermill's record of the run with repository-relative paths, as the manifest does."""
    nb = _executed(output)
    if nb is None or "papermill" not in nb.metadata:
        return
    nb.metadata.papermill.update(input_path=_shown(notebook), output_path=_shown(output))
    nbformat.write(nb, output)


def publish(out_dir: Path, stem: str) -> None:
    """Copy a notebook's small results next to its render: its results JSON (`<stem>.json`,
    anywhere under artifacts) and the model cards (`artifacts/<model>/README.md`, as
    `results/<model>.md`); checkpoints and datasets stay in artifacts."""
    artifacts, results = out_dir / "artifacts", out_dir / "results"
    results.mkdir(exist_ok=True)
    if (summary := next(artifacts.rglob(f"{stem}.json"), None)) is not None:
        shutil.copyfile(summary, results / summary.name)
    for card in artifacts.glob("*/README.md"):
        shutil.copyfile(card, results / f"{card.parent.name}.md")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sail",
        usage="%(prog)s run [NOTEBOOK ...] [--profile NAME] [-p NAME VALUE ...] [options]",
        description="Execute sail's numbered notebooks headless with papermill.",
    )
    parser.add_argument("command", choices=["run"], help="run notebooks")
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="stem, number or path (default: all)")
    parser.add_argument("--profile", default="tiny", help="parameter profile: tiny, small or full (default: tiny)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override one parameter; VALUE is read as YAML (repeatable)",
    )
    parser.add_argument("--output-dir", type=Path, default=REPO / "outputs", help="default: outputs/")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    parser.add_argument("--log-output", action="store_true", help="stream cell outputs to this terminal")
    parser.add_argument("--timeout", type=int, default=None, metavar="SECONDS", help="limit per cell")
    parser.add_argument("--notebooks-dir", type=Path, default=REPO / "notebooks", help="default: notebooks/")
    parser.add_argument("--configs-dir", type=Path, default=REPO / "configs" / "profiles", help="profile files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sail` command; returns the exit code (0 ok, 1 a notebook failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO if args.log_output else logging.WARNING, format="%(message)s")
    overrides = {name: parse_value(value) for name, value in args.parameter}
    if "profile" in overrides:
        parser.error("set the profile with --profile, not -p profile")
    if "artifacts_dir" in overrides:
        parser.error("a run's artifacts go to <output-dir>/<profile>/artifacts: set --output-dir, not -p artifacts_dir")
    if not PROFILE_NAME.fullmatch(args.profile):
        parser.error(f"--profile {args.profile!r} must be a plain name (letters, digits, _ and -): it names a folder")
    try:
        notebooks = find_notebooks(args.notebooks, args.notebooks_dir)
        sections = load_profile(args.configs_dir, args.profile)
        declared = check_parameter_names(notebooks, args.notebooks_dir, sections, overrides, args.profile)
    except UsageError as e:
        parser.error(str(e))

    out_dir = args.output_dir / args.profile
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    entries = json.loads(manifest_path.read_text()).get("notebooks", {}) if manifest_path.is_file() else {}
    git = git_commit(REPO)  # before this run writes its outputs, which would make the tree dirty
    os.environ.update(HEADLESS_ENVIRONMENT)  # the kernels inherit it: progress as lines, no library bars
    for notebook in notebooks:
        output = out_dir / f"{notebook.stem}.ipynb"
        print(f"sail: running {notebook.stem} (profile {args.profile}) -> {_shown(output)}", flush=True)
        parameters = notebook_parameters(sections, notebook.stem, args.profile, overrides, declared[notebook])
        if "artifacts_dir" in declared[notebook]:
            parameters["artifacts_dir"] = artifacts_parameter(out_dir, notebook)
        entry = execute(notebook, output, parameters, args.kernel, args.log_output, args.timeout)
        entries[notebook.stem] = {**entry, "commit": git["commit"]}
        write_manifest(manifest_path, repo_dir=REPO, profile=args.profile, git=git, notebooks=entries)
        if output.is_file():
            _tidy(output, notebook)
            publish(out_dir, notebook.stem)
            review.render_html(output)
        review.write_index(out_dir, args.profile, entries)
        if entry["error"]:
            failure = f"sail: FAILED {notebook.stem}, {entry['error']} (see {entry['output']})"
            print(failure, file=sys.stderr, flush=True)
            return 1
        print(f"sail: {notebook.stem} ok in {entry['duration_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    # `python -m sail.run ...` is the `sail` command; the word `run` may be left out here.
    sys.exit(main(sys.argv[1:] if sys.argv[1:2] == ["run"] else ["run", *sys.argv[1:]]))
