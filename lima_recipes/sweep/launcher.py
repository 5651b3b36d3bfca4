"""hydra/launcher=submitit_slurm with each job sized from its own composed config.

The plugin's SlurmLauncher resolves its parameters once per launch, so a sweep over model sizes
(`ablation_model_size`: 8 GPUs for 7B, 2 nodes x 8 for 65B) would give every job the first size.
This one composes each job's config, reads the resolved `hydra.launcher` sizes (GPUs and tasks per
node from `trainer.devices`, nodes from `trainer.num_nodes`), and submits one job array per size,
all before waiting on any.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.singleton import Singleton
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

SIZE_KEYS = ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "cpus_per_gpu", "mem_gb", "mem_per_gpu", "gres")
"""Launcher keys a job's own config decides."""
INIT_KEYS = ("submitit_folder", "max_num_timeout")
"""Keys the executor takes when it is created, not as job parameters."""


def group_by_size(sizes: Sequence[tuple]) -> dict[tuple, list[int]]:
    """Job indices by size, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    return groups


class SizedSlurmLauncher(SlurmLauncher):
    def job_size(self, overrides: Sequence[str]) -> tuple:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        launcher = OmegaConf.to_container(config.hydra.launcher, resolve=True)
        return tuple((key, launcher.get(key)) for key in SIZE_KEYS)

    def executor(self, size: dict):
        import submitit

        params = {**self.params, **size}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=params["submitit_folder"],
                                         **{f"{self._EXECUTOR}_max_num_timeout": params["max_num_timeout"]})
        queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in queue_keys else f"{self._EXECUTOR}_{key}": value
                                      for key, value in params.items() if key not in INIT_KEYS})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        jobs: list = [None] * len(job_overrides)
        for size, members in group_by_size([self.job_size(o) for o in job_overrides]).items():
            arguments = [(list(job_overrides[i]), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
                          Singleton.get_state()) for i in members]
            submitted = self.executor(dict(size)).map_array(self, *zip(*arguments))
            for index, job in zip(members, submitted):
                jobs[index] = job
        return [job.results()[0] for job in jobs]
