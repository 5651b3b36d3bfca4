"""Sweeps: the manifest, the report's arithmetic against hand-computed values, W&B's side, and
end-to-end multiruns of the tiny model (skip finished jobs, re-run one, record a failure, DDP
jobs inside a sweep)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lima_recipes.errors import ConfigError
from lima_recipes.sweep import manifest
from lima_recipes.sweep.report import build_report, t_interval

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- manifest and arithmetic

def test_swept_keys_come_from_the_preset_and_the_command_line():
    params = {"data.max_examples": "2000,4000", "run.seed": "1,2,3"}
    assert manifest.swept_keys(["experiment=x", "data=a,b"], params) == ["data.max_examples", "run.seed", "data"]
    # a plain value on the command line pins a key the preset sweeps
    assert manifest.swept_keys(["run.seed=7", "hydra.launcher.partition=gpu"], params) == ["data.max_examples"]
    assert manifest.job_values(["data.max_examples=2000", "run.seed=2", "experiment=x"], ["run.seed", "data.max_examples"]) == \
        {"run.seed": "2", "data.max_examples": "2000"}


def test_t_interval_against_hand_computed_values():
    # 7, 8, 9: mean 8, sample sd 1, t(0.975, df=2) = 4.302653 -> 8 +- 4.302653 / sqrt(3)
    r = t_interval([7.0, 8.0, 9.0])
    half = 4.302653 / math.sqrt(3)
    assert r["mean"] == 8.0 and r["ci95"] == pytest.approx([8 - half, 8 + half], abs=1e-5)
    # 1, 3: mean 2, sd sqrt(2), t(0.975, df=1) = 12.706205 -> 2 +- 12.706205
    assert t_interval([1.0, 3.0])["ci95"] == pytest.approx([2 - 12.706205, 2 + 12.706205], abs=1e-5)
    assert t_interval([5.0]) == {"n": 1, "mean": 5.0, "ci95": [None, None], "sd": None}
    assert t_interval([])["mean"] is None


def fake_job(sweep_dir: Path, num: int, swept: dict, status: str, eval_key: str = "likert@1", **metrics) -> Path:
    """A job folder as a job leaves it, written by hand. Failed and unfinished jobs carry a
    COMPLETED from training with scores too (their evaluation is what failed or is running),
    so only their status keeps them out of the averages."""
    run_dir = sweep_dir / f"job{num}"
    run_dir.mkdir(parents=True)
    examples = int(swept.get("data.max_examples", 40))
    (run_dir / "data_stats.json").write_text(json.dumps({"train": {"examples": examples}}))
    scores = {k: v for k, v in metrics.items() if k != "val/loss"}
    (run_dir / "COMPLETED").write_text(json.dumps({
        "steps": examples // 8, "val/loss": metrics.get("val/loss"),
        "evals": {eval_key: {"name": "likert", "finished": "2026-01-01", "scores": scores},
                  "generate@0": {"name": "generate", "finished": "2026-01-02", "scores": {"helpfulness": 0.0}}}}))
    if status == "failed":
        (run_dir / "FAILED").write_text(json.dumps({"error": "data.max_examples=64, but ... holds 40", "type": "ConfigError"}))
    overrides = [f"{k}={v}" for k, v in swept.items()]
    manifest.record_job(sweep_dir, num, run_dir, overrides)
    if status != "unfinished":
        job_file = sweep_dir / manifest.MANIFEST / "jobs" / f"{num:04d}.json"
        job_file.write_text(json.dumps({**json.loads(job_file.read_text()), "status": status, "eval_key": eval_key}))
    return run_dir


def test_report_groups_seeds_marks_failures_and_writes_csv_md_png(tmp_path):
    sweep = tmp_path / "ablation_quantity"
    manifest.record_launch(sweep, ["experiment=ablation_quantity"], {"data.max_examples": "16,32", "run.seed": "1,2,3"})
    fake_job(sweep, 0, {"data.max_examples": "16", "run.seed": "1"}, "done", helpfulness=3.0, **{"val/loss": 2.0})
    fake_job(sweep, 1, {"data.max_examples": "16", "run.seed": "2"}, "done", helpfulness=4.0, **{"val/loss": 1.9})
    fake_job(sweep, 2, {"data.max_examples": "16", "run.seed": "3"}, "done", helpfulness=5.0, **{"val/loss": 1.8})
    fake_job(sweep, 3, {"data.max_examples": "32", "run.seed": "1"}, "skipped", helpfulness=4.5, **{"val/loss": 1.7})
    fake_job(sweep, 4, {"data.max_examples": "32", "run.seed": "2"}, "failed", helpfulness=9.9)
    fake_job(sweep, 5, {"data.max_examples": "32", "run.seed": "3"}, "unfinished", helpfulness=9.9)

    report = build_report(sweep)
    assert report.score == "helpfulness" and report.variant_keys == ["data.max_examples"]
    small, large = report.groups
    assert small["variant"] == {"data.max_examples": "16"} and small["n"] == 3 and small["mean"] == 4.0
    half = 4.302653 / math.sqrt(3)  # scores 3, 4, 5: sd 1
    assert small["ci95"] == pytest.approx([4 - half, 4 + half], abs=1e-5)
    # neither the failed job nor the unfinished one is scored
    assert (large["jobs"], large["n"], large["failed"], large["mean"]) == (3, 1, 1, 4.5)

    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["status"] for r in rows] == ["done", "done", "done", "skipped", "failed", "unfinished"]
    assert rows[4]["error"].startswith("data.max_examples=64") and rows[0]["examples"] == "16"
    assert rows[0]["data.max_examples"] == "16" and rows[0]["run.seed"] == "1"
    md = (sweep / "report.md").read_text()
    assert f"| data.max_examples=16 | 3 | 3 | 4 | [{4 - half:.4g}, {4 + half:.4g}] | 0 |" in md
    assert "| data.max_examples=32 | 3 | 1 | 4.5 | - | 1 |" in md and "Failed jobs keep their reason" in md
    assert (sweep / "report.png").stat().st_size > 5000
    # another score on request, lower-is-better named as such; a score no job has is an error
    assert build_report(sweep, score="val/loss").groups[0]["mean"] == pytest.approx(1.9)
    assert "(lower is better)" in (sweep / "report.md").read_text()
    with pytest.raises(ConfigError, match=r"score=helpfullness: no finished job has it; scores of this sweep: .*helpfulness"):
        build_report(sweep, score="helpfullness")


def test_report_reads_the_sweeps_wandb_group_when_online(tmp_path, monkeypatch):
    import wandb

    sweep = tmp_path / "s"
    manifest.record_launch(sweep, [], {"run.seed": "1,2"})
    run_dir = fake_job(sweep, 0, {"run.seed": "1"}, "done", helpfulness=4.0)
    (run_dir / "config.yaml").write_text("run: {name: s}\nlogger: {wandb: true, project: lima-recipes, entity: team}\n")
    seen = {}

    class FakeApi:
        default_entity = "me"

        def __init__(self, timeout=None):
            pass

        def runs(self, path, filters):
            seen.update(path=path, filters=filters)
            return [SimpleNamespace(id="job0", state="finished", url="https://wandb.ai/team/lima-recipes/runs/job0",
                                    summary={"train/loss": 1.25})]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_API_KEY", "k")
    monkeypatch.setenv("WANDB_MODE", "online")
    report = build_report(sweep)
    assert seen == {"path": "team/lima-recipes", "filters": {"group": "s"}}
    assert report.jobs[0]["wandb_state"] == "finished" and report.jobs[0]["train/loss"] == 1.25
    assert "read 1 run(s) of group `s`" in report.wandb
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert build_report(sweep).wandb.startswith("offline")


def test_slurm_launcher_takes_gpus_and_nodes_from_the_trainer_config():
    from lima_recipes.config import compose

    cfg = compose(["hydra/launcher=submitit_slurm", "experiment=lima7b", "trainer.devices=8", "trainer.num_nodes=2",
                   "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=600"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (8, 8, 2)
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 600)


@pytest.mark.parametrize("model,nodes", [("llama7b", 1), ("llama65b", 2)])
def test_model_size_ablation_jobs_resolve_each_size_its_own_hardware(model, nodes):
    from lima_recipes.config import compose

    cfg = compose(["hydra/launcher=submitit_slurm", "experiment=ablation_model_size", f"model={model}"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "lima_recipes.sweep.launcher.SizedSlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (8, 8, nodes)


def test_the_slurm_launcher_submits_one_job_array_per_size_before_waiting(monkeypatch):
    import submitit

    from lima_recipes.sweep.launcher import SizedSlurmLauncher

    events = []

    class FakeJob:
        def __init__(self, num):
            self.num = num

        def results(self):
            events.append(("wait", self.num))
            return [f"result {self.num}"]

    class FakeExecutor:
        def __init__(self, cluster, folder, **init):
            self.params = {}
            events.append(("executor", cluster, folder, init))

        def update_parameters(self, **params):
            self.params.update(params)

        def map_array(self, fn, overrides, dir_keys, nums, ids, states):
            events.append(("submit", self.params["nodes"], self.params["gpus_per_node"], self.params["slurm_partition"], list(nums)))
            return [FakeJob(n) for n in nums]

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    sizes = {"llama7b": {"nodes": 1, "gpus_per_node": 8}, "llama65b": {"nodes": 2, "gpus_per_node": 8}}

    class Sized(SizedSlurmLauncher):
        def job_size(self, overrides):
            model = dict(o.split("=") for o in overrides)["model"]
            return tuple(sizes[model].items())

    launcher = Sized(submitit_folder="/sweep/_sweep/submitit/%j", max_num_timeout=20, nodes=1, gpus_per_node=1, partition="gpu",
                     timeout_min=60)
    jobs = [["model=llama7b", "run.seed=1"], ["model=llama65b", "run.seed=1"], ["model=llama7b", "run.seed=2"]]
    assert launcher.launch(jobs, initial_job_idx=0) == ["result 0", "result 1", "result 2"]
    submits = [e for e in events if e[0] == "submit"]
    assert submits == [("submit", 1, 8, "gpu", [0, 2]), ("submit", 2, 8, "gpu", [1])]
    assert events.index(submits[-1]) < min(i for i, e in enumerate(events) if e[0] == "wait")  # all submitted, then waited
    assert all(e[3] == {"slurm_max_num_timeout": 20} for e in events if e[0] == "executor")


# ---------------------------------------------------------------- multiruns of the tiny model

def multirun(tmp_path: Path, *overrides: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1", "CI": "1"}
    args = [sys.executable, str(ROOT / "recipes" / "train.py"), "-m", "experiment=ablation_smoke", "logger=csv",
            f"run.output_root={tmp_path}/out", f"data.cache_dir={tmp_path}/cache", "trainer.enable_progress_bar=false", *overrides]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def statuses(sweep: Path) -> list[str]:
    return [job.get("status") for job in manifest.read_jobs(sweep)]


@pytest.mark.slow
def test_sweep_runs_skips_reruns_one_job_and_reports(tmp_path):
    proc = multirun(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "out" / "ablation_smoke"
    jobs = manifest.read_jobs(sweep)
    assert statuses(sweep) == ["done"] * 4
    assert [(j["swept"]["data.max_examples"], j["swept"]["run.seed"]) for j in jobs] == [("16", "1"), ("16", "2"), ("32", "1"), ("32", "2")]
    for job in jobs:  # each job trained on its own subset and evaluated after training
        done = json.loads((Path(job["dir"]) / "COMPLETED").read_text())
        assert done["steps"] == int(job["swept"]["data.max_examples"]) // 8
        assert next(iter(done["evals"].values()))["scores"]["responses"] == 4
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["data.max_examples"], r["run.seed"], r["status"]) for r in rows] == \
        [("16", "1", "done"), ("16", "2", "done"), ("32", "1", "done"), ("32", "2", "done")]
    assert all(float(r["val/loss"]) > 0 for r in rows)
    expected = t_interval([float(r["val/loss"]) for r in rows[:2]])["ci95"]
    assert f"[{expected[0]:.4g}, {expected[1]:.4g}]" in (sweep / "report.md").read_text()

    stamps = {j["dir"]: (Path(j["dir"]) / "COMPLETED").stat().st_mtime_ns for j in jobs}
    again = multirun(tmp_path)
    assert again.returncode == 0 and statuses(sweep) == ["skipped"] * 4
    assert {d: (Path(d) / "COMPLETED").stat().st_mtime_ns for d in stamps} == stamps

    (Path(jobs[1]["dir"]) / "COMPLETED").unlink()
    once_more = multirun(tmp_path)
    assert once_more.returncode == 0 and statuses(sweep) == ["skipped", "done", "skipped", "skipped"]
    rerun = list(csv.DictReader((sweep / "report.csv").open()))[1]
    assert rerun["val/loss"] == rows[1]["val/loss"]  # resumed from its last checkpoint: same result, metrics kept

    report = subprocess.run([sys.executable, "recipes/report.py", f"output_root={tmp_path}/out"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and f"wrote {sweep}/report.csv" in report.stdout  # the latest sweep by default


@pytest.mark.slow
def test_a_failed_job_is_recorded_and_the_others_finish(tmp_path):
    # 64 examples are more than the 40 the sample data holds: that job fails after composing.
    # run.name follows the swept value, so each job trains in its own experiment folder, and the
    # launch's folder (run.name of the unswept config) still lists both.
    proc = multirun(tmp_path, "data.max_examples=64,16", "run.seed=1", "run.name=smoke_${data.max_examples}")
    assert proc.returncode == 1
    sweep = tmp_path / "out" / "smoke_None"
    assert statuses(sweep) == ["failed", "done"]
    failed, done = manifest.read_jobs(sweep)
    assert Path(failed["dir"]).parent.name == "smoke_64" and Path(done["dir"]).parent.name == "smoke_16"
    assert "data.max_examples=64, but data.path=" in json.loads((Path(failed["dir"]) / "FAILED").read_text())["error"]
    assert (Path(done["dir"]) / "COMPLETED").is_file()
    assert "error: job 0 (data.max_examples=64) failed: data.max_examples=64" in proc.stderr
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["status"] for r in rows] == ["failed", "done"] and "holds 40 usable" in rows[0]["error"]


@pytest.mark.slow
def test_ddp_jobs_inside_a_sweep_make_no_stray_directories_and_survive_a_failed_one(tmp_path):
    # job 0 diverges (val/loss nan after one epoch) on both ranks; job 1 must still run
    work = tmp_path / "cwd"
    work.mkdir()
    proc = multirun(tmp_path, "optim.lr=1e30,3e-3", "data.max_examples=16", "run.seed=1", "strategy=ddp",
                    "trainer.devices=2", "trainer.accelerator=cpu", cwd=work)
    assert proc.returncode == 1, proc.stderr[-3000:]
    sweep = tmp_path / "out" / "ablation_smoke"
    diverged, trained = jobs = manifest.read_jobs(sweep)
    assert statuses(sweep) == ["failed", "done"]
    assert "val/loss is nan after epoch 1" in json.loads((Path(diverged["dir"]) / "FAILED").read_text())["error"]
    expected = {"_sweep", "multirun.yaml", "report.csv", "report.md", "report.png", *(j["run_id"] for j in jobs)}
    assert {p.name for p in sweep.iterdir()} == expected
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"ablation_smoke"}
    assert list(work.iterdir()) == []  # nothing written where the command ran
    run_dir = Path(trained["dir"])
    assert json.loads((run_dir / "COMPLETED").read_text())["steps"] == 2
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 ran this job, in this job's folder


# ---------------------------------------------------------------- the ablation presets

def sweep_points(experiment: str) -> list[list[str]]:
    """Every job's overrides, expanded the way Hydra's basic sweeper expands them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    from lima_recipes.config import compose

    params = compose([f"experiment={experiment}"], return_hydra_config=True).hydra.sweeper.params
    parsed = manifest.parse_overrides([f"experiment={experiment}", *(f"{k}={v}" for k, v in params.items())])
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, max_batch_size=None) for job in batch]


@pytest.mark.parametrize("experiment,jobs", [("ablation_quantity", 15), ("ablation_diversity", 9), ("ablation_quality", 6),
                                             ("ablation_multiturn", 6), ("ablation_seeds", 5), ("ablation_model_size", 6),
                                             ("ablation_smoke", 4)])
def test_every_point_of_every_ablation_composes_and_validates(experiment, jobs, monkeypatch):
    from lima_recipes.config import compose, validate

    monkeypatch.setenv("OPENAI_API_KEY", "set")
    points = sweep_points(experiment)
    assert len(points) == jobs
    configs = [compose(point) for point in points]
    for cfg in configs:
        validate(cfg)
        assert cfg.run.name == experiment
    if experiment == "ablation_quantity":
        assert sorted({c.data.max_examples for c in configs}) == [2000, 4000, 8000, 16000, 32000]
        assert {(c.data.name, c.model.name, c.eval.name, c.eval.num_samples, c.prompts.name) for c in configs} == \
            {("stackexchange_filtered", "llama7b", "likert", 5, "lima_test")}
    if experiment in ("ablation_diversity", "ablation_quality"):
        assert {c.data.max_examples for c in configs} == {2000}  # kept when the data preset is swapped
    if experiment == "ablation_model_size":  # each size keeps its own batch and dropout
        assert {(c.model.name, c.trainer.global_batch_size, c.model.residual_dropout) for c in configs} == \
            {("llama7b", 64, 0.2), ("llama65b", 32, 0.3)}
    if experiment == "ablation_multiturn":
        assert {c.data.name for c in configs} == {"lima1k", "lima_multiturn"}


# ---------------------------------------------------------------- make dashboard

def sweep_with_wandb_jobs(tmp_path: Path) -> Path:
    sweep = tmp_path / "ablation_diversity"
    manifest.record_launch(sweep, [], {"data": "stackexchange_filtered,wikihow", "run.seed": "1,2"})
    for num, (data, seed, score) in enumerate([("stackexchange_filtered", 1, 4.1), ("stackexchange_filtered", 2, 4.3),
                                               ("wikihow", 1, 3.6), ("wikihow", 2, 3.8)]):
        run_dir = fake_job(sweep, num, {"data": data, "run.seed": str(seed)}, "done", helpfulness=score, stopped_at_eot=0.9)
        (run_dir / "config.yaml").write_text("run: {name: ablation_diversity}\nlogger: {wandb: true, project: lima-recipes, entity: team}\n")
    return sweep


def test_dashboard_spec_offline_is_written_and_nothing_is_created(tmp_path, monkeypatch):
    from lima_recipes.sweep.dashboard import dashboard_spec, make_dashboard

    monkeypatch.setenv("WANDB_MODE", "offline")
    report = build_report(sweep_with_wandb_jobs(tmp_path), use_wandb=False)
    spec = dashboard_spec(report)
    assert spec["runs"] == "Metric('Group') == 'ablation_diversity' and Metric('JobType') == 'train'"
    assert spec["curves"] == ["train/loss", "val/loss", "train/lr", "train/tokens_per_sec"]
    assert spec["parallel_coordinates"] == ["config:data.name", "config:run.seed", "summary:eval/helpfulness"]
    assert spec["score_plot"] == {"kind": "bar", "metric": "summary:eval/helpfulness", "groupby": "config:data.name",
                                  "aggregate": "mean, stderr over run.seed"}
    assert spec["scores"]["job0"] == {"eval/helpfulness": 4.1, "eval/stopped_at_eot": 0.9}
    path, outcome = make_dashboard(report)
    assert json.loads(path.read_text()) == spec and outcome.startswith("W&B is offline: spec only")


def test_dashboard_online_pushes_scores_and_saves_a_valid_wandb_report(tmp_path, monkeypatch):
    import wandb
    import wandb_workspaces.reports.v2.interface as wr_interface

    from lima_recipes.sweep.dashboard import make_dashboard

    summaries: dict[str, dict] = {}

    class FakeRun:
        def __init__(self, path):
            self.summary = SummaryDict(path)

    class SummaryDict(dict):
        def __init__(self, path):
            super().__init__()
            self.path = path

        def update(self, *args, **kwargs):  # the public API's "write the summary now"
            super().update(*args, **kwargs)
            summaries[self.path] = dict(self)

    class FakeApi:
        default_entity = "me"

        def __init__(self, timeout=None):
            pass

        def run(self, path):
            return FakeRun(path)

    saved = {}

    def fake_save(self, draft=False, clone=False):  # serialising needs W&B's server (it looks the project up)
        saved["report"] = self
        self.id = "abc"
        return self

    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setattr(wr_interface.Report, "save", fake_save)
    monkeypatch.setattr(wr_interface.Report, "url", property(lambda self: f"https://wandb.test/{self.entity}/{self.project}/{self.id}"))
    monkeypatch.setenv("WANDB_API_KEY", "k")
    monkeypatch.setenv("WANDB_MODE", "online")
    report = build_report(sweep_with_wandb_jobs(tmp_path), use_wandb=False)
    _, outcome = make_dashboard(report)
    assert outcome == "W&B report created: https://wandb.test/team/lima-recipes/abc (scores written to 4 run summaries)"
    assert summaries["team/lima-recipes/job2"] == {"eval/helpfulness": 3.6, "eval/stopped_at_eot": 0.9}
    table, grid = saved["report"].blocks
    assert "| data=wikihow | 2 | 2 | 3.7 |" in table.text
    assert [type(p).__name__ for p in grid.panels] == ["LinePlot"] * 4 + ["ParallelCoordinatesPlot", "BarPlot"]
    assert [p.y for p in grid.panels[:4]] == [["train/loss"], ["val/loss"], ["train/lr"], ["train/tokens_per_sec"]]
    assert grid.runsets[0].filters == "Metric('Group') == 'ablation_diversity' and Metric('JobType') == 'train'"
    assert grid.panels[5].groupby.name == "data.name" and grid.panels[5].metrics[0].name == "eval/helpfulness"


@pytest.mark.slow
def test_the_sweep_runs_through_submitit_as_on_slurm(tmp_path):
    """hydra/launcher=submitit_local: each job in its own process, as SLURM runs them."""
    proc = multirun(tmp_path, "hydra/launcher=submitit_local", "data.max_examples=16", "run.seed=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "out" / "ablation_smoke"
    (job,) = manifest.read_jobs(sweep)
    assert job["status"] == "done" and (Path(job["dir"]) / "COMPLETED").is_file()
    assert [r["status"] for r in csv.DictReader((sweep / "report.csv").open())] == ["done"]


def test_the_multinode_sbatch_script_asks_for_what_lima65b_trains_on():
    """One task per GPU on as many nodes as the experiment names: a mismatch hangs Lightning."""
    import re

    from lima_recipes.config import compose

    script = (ROOT / "recipes" / "slurm" / "lima65b.sbatch").read_text()
    asks = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", script, re.MULTILINE))
    trainer = compose(["experiment=lima65b"]).trainer
    assert int(asks["nodes"]) == trainer.num_nodes == 2
    assert int(asks["ntasks-per-node"]) == int(asks["gpus-per-node"]) == trainer.devices == 8
    assert "gpus-per-task" not in asks and "gpu-bind" not in asks
    assert re.search(r"^srun .*recipes/train.py experiment=lima65b", script, re.MULTILINE)
