"""Whether a composed run fits its devices, and the smallest change that makes it fit.

`make plan` prints a verdict for the usual GPU sizes; `make train` checks the visible devices
(GPUs, or the host's memory shared by the CPU processes of a node) before reading a weight.
Both use `make_plan`'s per-device estimate against a usable share of the device's memory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from omegaconf import DictConfig

from lima_recipes.config.plan import GIB, make_plan
from lima_recipes.model.adapter import uses_adapter

DEVICE_TYPES = (("40 GB (A100 40GB)", 40.0), ("80 GB (A100/H100 80GB)", 80.0), ("141 GB (H200)", 140.0))
"""GiB as the driver reports them (an H200's 141 GB is 140 GiB)."""
USABLE = 0.9
"""Share of device memory a run may plan for: the CUDA context, NCCL buffers and allocator
fragmentation take the rest."""
DEVICES_PER_NODE = 8
MAX_NODES = 64


@dataclass
class Verdict:
    device: str
    capacity: float
    """Bytes of device memory."""
    needed: float
    """Bytes per device the plan estimates."""
    fix: str | None = None
    """The smallest change that fits, when it does not."""

    @property
    def fits(self) -> bool:
        return self.needed <= USABLE * self.capacity

    def line(self) -> str:
        share = f"{self.needed / GIB:,.1f} GiB of {USABLE * self.capacity / GIB:,.1f} usable"
        return f"fits ({share})" if self.fits else f"does not fit ({share}); smallest fix: {self.fix}"


def _variant(cfg: DictConfig, **changes) -> DictConfig:
    out = copy.deepcopy(cfg)
    for key, value in changes.items():
        group, name = key.split(".")
        out[group][name] = value
    return out


def needed_bytes(cfg: DictConfig) -> float:
    return make_plan(cfg, None, "", added_tokens=1).memory.total


def _layouts(cfg: DictConfig) -> list[tuple[int, int]]:
    """(devices per node, nodes) with more devices than now, smallest first, that split the
    global batch evenly (every rank takes whole micro-batches)."""
    t = cfg.trainer
    per_step = t.global_batch_size // t.micro_batch_size
    world = t.devices * t.num_nodes
    options = [(d, 1) for d in (1, 2, 4, 8)] + [(DEVICES_PER_NODE, n) for n in range(2, MAX_NODES + 1)]
    return [(d, n) for d, n in options if d * n > world and per_step % (d * n) == 0]


def smallest_fix(cfg: DictConfig, capacity: float) -> str:
    """First of: activation checkpointing (no new hardware), more devices under FSDP (FULL_SHARD
    over every device), CPU offload on the devices there are. Empty when the run fits as it is."""
    budget = USABLE * capacity
    s = cfg.strategy
    if not s.activation_checkpointing and needed_bytes(_variant(cfg, **{"strategy.activation_checkpointing": True})) <= budget:
        return "strategy.activation_checkpointing=true"
    if uses_adapter(cfg.get("adapter")):
        return "none yet: adapters run unsharded for now (strategy=auto or ddp), where this model does not fit one device"
    sharded = {"strategy.kind": "fsdp", "strategy.sharding_strategy": "FULL_SHARD", "strategy.activation_checkpointing": True,
               "strategy.precision": "bf16-mixed" if s.kind != "fsdp" else s.precision}
    prefix = "" if s.kind == "fsdp" and s.sharding_strategy == "FULL_SHARD" else (
        "strategy.sharding_strategy=FULL_SHARD " if s.kind == "fsdp" else "strategy=fsdp ")
    layouts = [(cfg.trainer.devices, cfg.trainer.num_nodes), *_layouts(cfg)]
    for devices, nodes in layouts:
        if needed_bytes(_variant(cfg, **sharded, **{"trainer.devices": devices, "trainer.num_nodes": nodes})) <= budget:
            return f"{prefix}{_layout_text(cfg, devices, nodes)}".strip()
    for devices, nodes in layouts:
        offload = _variant(cfg, **sharded, **{"strategy.cpu_offload": True, "trainer.devices": devices, "trainer.num_nodes": nodes})
        if needed_bytes(offload) <= budget:
            host = make_plan(offload, None, "").memory.cpu_offloaded * devices
            return (f"strategy=fsdp_offload {_layout_text(cfg, devices, nodes)}".strip() +
                    f" (about {host / GIB:,.0f} GiB of host memory per node)")
    return "none found (try a smaller trainer.micro_batch_size or data.max_length)"


def _layout_text(cfg: DictConfig, devices: int, nodes: int) -> str:
    if (devices, nodes) == (cfg.trainer.devices, cfg.trainer.num_nodes):
        return ""
    return f"trainer.devices={devices}" + (f" trainer.num_nodes={nodes}" if nodes > 1 else "") + f" ({devices * nodes} devices)"


def verdicts(cfg: DictConfig) -> list[Verdict]:
    needed = needed_bytes(cfg)
    out = []
    for name, gib in DEVICE_TYPES:
        verdict = Verdict(name, gib * GIB, needed)
        if not verdict.fits:
            verdict.fix = smallest_fix(cfg, verdict.capacity)
        out.append(verdict)
    return out


def host_verdict(cfg: DictConfig, host_bytes: float | None = None) -> Verdict:
    """Host RAM of the busiest node while the pretrained weights load, against this machine's RAM
    (the plan assumes every node is like the one it runs on)."""
    import psutil

    capacity = float(host_bytes if host_bytes is not None else psutil.virtual_memory().total)
    verdict = Verdict("host RAM (this machine)", capacity, make_plan(cfg, None, "").disk.host_load_per_node)
    if not verdict.fits:
        verdict.fix = host_fix(cfg, capacity)
    return verdict


def host_fix(cfg: DictConfig, capacity: float) -> str:
    """Loading that holds less of the checkpoint per node: rank 0 sends it on (FSDP2 broadcast),
    then each node reading only its own slices (per_rank)."""
    s = cfg.strategy
    if uses_adapter(cfg.get("adapter")):
        return "hosts with more RAM: adapters run unsharded for now, every rank loading the whole model"
    budget = USABLE * capacity
    options = []
    if s.kind != "fsdp":
        options.append(("strategy=fsdp", {"strategy.kind": "fsdp", "strategy.load": "broadcast"}))
    if s.kind != "fsdp" or s.load != "per_rank":
        options.append(("strategy=fsdp strategy.load=per_rank" if s.kind != "fsdp" else "strategy.load=per_rank",
                        {"strategy.kind": "fsdp", "strategy.load": "per_rank"}))
    for text, changes in options:
        if make_plan(_variant(cfg, **changes), None, "").disk.host_load_per_node <= budget:
            return text
    return "hosts with more RAM, or more nodes with strategy=fsdp strategy.load=per_rank"


def visible_device(cfg: DictConfig) -> tuple[str, float, bool]:
    """What this machine gives each rank: a GPU's memory, or a share of the host's for CPU ranks."""
    import psutil
    import torch

    if cfg.trainer.accelerator != "cpu" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return props.name, float(props.total_memory), True
    host = psutil.virtual_memory().total
    return f"this host's CPU ({cfg.trainer.devices} process(es) sharing {host / GIB:,.0f} GiB)", host / cfg.trainer.devices, False


def check_fits(cfg: DictConfig) -> None:
    """`make train`'s gate, before any weight is read: one line with the estimate and the fix,
    for the devices and then for the host RAM the pretrained weights pass through."""
    from lima_recipes.errors import ConfigError

    if not cfg.trainer.check_memory:
        return
    name, capacity, on_gpu = visible_device(cfg)
    verdict = Verdict(name, capacity, needed_bytes(cfg))
    if not verdict.fits:
        # CPU ranks share one host: more of them only split it further, so the fix is GPUs
        gpu = DEVICE_TYPES[1][1] * GIB
        if on_gpu:
            fix = smallest_fix(cfg, capacity)
        else:
            on_80 = smallest_fix(cfg, gpu)
            world = cfg.trainer.devices * cfg.trainer.num_nodes
            fix = f"run it on GPUs ({f'on 80 GB GPUs: {on_80}' if on_80 else f'it fits {world} x 80 GB as configured'})"
        raise ConfigError(
            f"make plan: {cfg.model.name} with strategy={cfg.strategy.name} on {cfg.trainer.devices * cfg.trainer.num_nodes} "
            f"device(s) needs about {verdict.needed / GIB:,.1f} GiB per device and {name} gives "
            f"{USABLE * capacity / GIB:,.1f} GiB usable; smallest fix: {fix} (trainer.check_memory=false runs it anyway)")
    host = host_verdict(cfg) if cfg.model.path is not None else None
    if host is not None and not host.fits:
        raise ConfigError(
            f"make plan: loading model.path={cfg.model.path} ({cfg.model.name}, strategy={cfg.strategy.name}) needs about "
            f"{host.needed / GIB:,.1f} GiB of host RAM per node and this host has {USABLE * host.capacity / GIB:,.1f} GiB "
            f"usable; smallest fix: {host.fix} (trainer.check_memory=false runs it anyway)")
