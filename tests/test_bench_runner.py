"""`bench/run_all.py`: every bench script known to it, run as its own process, its ratios kept, a
failure recorded with its error rather than hidden."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
run_all = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_all)


def test_every_bench_script_is_in_the_suite_and_takes_its_quick_arguments():
    helpers = {"pretrain_setup", "run_all"}  # a shared module and this runner, not benches
    scripts = {path.stem for path in (ROOT / "bench").glob("*.py")} - helpers
    assert set(run_all.SUITE) == scripts
    for script, (arguments, _, _) in run_all.SUITE.items():
        source = (ROOT / "bench" / f"{script}.py").read_text()
        flags = [a for a in [*arguments, "--out"] if a.startswith("--")]
        assert all(f'"{flag}"' in source for flag in flags), (script, flags)  # each is an option it declares


def test_a_bench_s_ratios_come_from_its_result_and_a_failure_keeps_its_error(tmp_path, monkeypatch):
    entry = run_all.run_one("cluster_plan", tmp_path)
    assert entry["exit_code"] == 0 and entry["command"] == ["python", "bench/cluster_plan.py"]
    assert entry["ratios"] == {"full H100 GPU-hours": 5779}  # bench/results/cluster_plan.md's total

    (tmp_path / "broken.py").write_text("import sys\nsys.exit('no pool: run make pipeline first')\n")
    monkeypatch.setattr(run_all, "BENCH", tmp_path)
    monkeypatch.setitem(run_all.SUITE, "broken", ([], dict, ".json"))
    entry = run_all.run_one("broken", tmp_path)
    assert entry["exit_code"] == 1 and "no pool: run make pipeline first" in entry["error"]


def test_the_report_lands_in_the_profile_s_outputs_and_the_exit_code_reports_failures(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    monkeypatch.setattr(
        run_all, "run_one", lambda script, scratch: {"exit_code": int(script == "packing"), "seconds": 0}
    )
    assert run_all.main(["--profile", "tiny", "--only", "packing", "train_step"]) == 1
    assert list(json.loads((tmp_path / "outputs" / "tiny" / "bench.json").read_text())) == ["train_step", "packing"]


def test_the_foundations_bench_counts_the_runs_that_read_each_kind_beyond_the_margin():
    spec = importlib.util.spec_from_file_location("foundations_bench", ROOT / "bench" / "foundations.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def run(pope_own: float, colour_own: float) -> dict:
        return {
            "question_accuracy": {
                "own image": {"WorldPOPE/pope": pope_own, "WorldVQA/colour": colour_own},
                "another image": {"WorldPOPE/pope": 0.50, "WorldVQA/colour": 0.125},
            }
        }

    # 0.54 - 0.50 is within the 0.05 margin; 0.56 - 0.50 beyond it
    runs = [run(0.86, 0.70), run(0.54, 0.70), run(0.56, 0.15)]
    assert bench.runs_reading_kind(runs) == {"WorldPOPE/pope": 2, "WorldVQA/colour": 2}
