"""`make plan`: what a composed run will cost, computed without loading a single weight.

Parameters come from the architecture built on the `meta` device. Memory per device follows
the usual accounting (ZeRO paper, Korthikanti et al. for activations): bytes per parameter for
weights, gradients and AdamW state by precision, divided by the shards the strategy makes, plus
the activations of one micro-batch at the full max length. It is an estimate for choosing a
strategy and device count; `make bench` compares it with measured peaks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from omegaconf import DictConfig

from lima_recipes.model.adapter import base_stays_fp32, uses_adapter
from lima_recipes.model.build import architecture_config

GIB = 1024**3
WRITE_BYTES_PER_S = 1e9
"""The disk speed checkpoint write times are quoted at (1 GB/s)."""
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class MemoryPlan:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    cpu_offloaded: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


@dataclass
class DiskPlan:
    host_load_per_node: float
    """Host RAM per node while the pretrained weights load (the busiest node)."""
    host_load_note: str
    last_checkpoint: float
    """Bytes of `last.ckpt`: fp32 master weights and AdamW moments (sharded: one file per rank)."""
    kept_epoch: float
    """Bytes of one kept epoch (HF directory in trainer.save_dtype); the export is one more."""
    kept_epochs: int

    @property
    def total(self) -> float:
        return self.last_checkpoint + (self.kept_epochs + 1) * self.kept_epoch


@dataclass
class Plan:
    model: str
    parameters: int
    trainable_parameters: int
    added_tokens: int
    world_size: int
    strategy: str
    precision: str
    memory: MemoryPlan
    examples: int | None
    examples_note: str
    steps_per_epoch: int | None
    total_steps: int | None
    accumulation: int
    dropout_by_layer: list[float]
    disk: DiskPlan

    def as_dict(self) -> dict:
        out = asdict(self)
        out["memory"]["total"] = self.memory.total
        out["disk"]["total"] = self.disk.total
        return out


def count_parameters(config) -> int:
    """Parameters of the architecture, built on `meta` (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _bytes_per_param(strategy_cfg) -> tuple[int, int, int, int]:
    """(weights, gradients, optimizer state, compute) bytes per parameter."""
    precision = strategy_cfg.precision
    if strategy_cfg.kind == "deepspeed" and precision in ("bf16-mixed", "16-mixed"):
        return 2, 2, 12, 2  # half weights and grads; fp32 master copy + two Adam moments
    if precision in ("bf16-true",):
        return 2, 2, 4, 2
    compute = 2 if precision in ("bf16-mixed", "16-mixed") else 4
    return 4, 4, 8, compute  # fp32 weights and grads, two fp32 Adam moments


def _shards(strategy_cfg, world: int, devices_per_node: int) -> tuple[int, int, int]:
    """How many ways weights, gradients and optimizer state are split."""
    kind = strategy_cfg.kind
    if kind == "fsdp":
        mode = strategy_cfg.sharding_strategy
        if mode == "FULL_SHARD":
            return world, world, world
        if mode == "SHARD_GRAD_OP":
            return 1, world, world
        if mode == "HYBRID_SHARD":
            return devices_per_node, devices_per_node, devices_per_node
        return 1, 1, 1
    if kind == "deepspeed":
        stage = strategy_cfg.zero_stage
        return (world if stage >= 3 else 1), (world if stage >= 2 else 1), world
    return 1, 1, 1


def activation_bytes(config, strategy_cfg, micro_batch: int, seq_len: int, vocab: int, compute: int) -> float:
    """Saved activations of one micro-batch at seq_len tokens, with flash/SDPA attention (no
    seq_len^2 scores kept). Per token and layer a Llama block keeps about 10 hidden-size tensors
    (norms, q/o projections, residuals) plus 4 MLP-width ones (gate, up, activation, product)."""
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * (getattr(config, "head_dim", None) or h // heads)
    tokens = micro_batch * seq_len
    per_layer = tokens * (10 * h + 2 * kv + 4 * i) * compute
    if strategy_cfg.activation_checkpointing:
        layers = tokens * h * compute * n + per_layer  # each layer's input, plus one layer recomputed
    else:
        layers = per_layer * n
    logits = tokens * vocab * (compute + 4 + 4)  # logits, their fp32 copy for the loss, its gradient
    return layers + logits


def disk_plan(cfg: DictConfig, params: int, largest_tensor: int, trainable: int | None = None) -> DiskPlan:
    """Host memory while loading, and what the checkpoints take on disk."""
    from lima_recipes.train.sharded import BROADCAST_GROUP_BYTES
    from lima_recipes.train.strategies import keeps_fp32_master_weights

    s, t = cfg.strategy, cfg.trainer
    stored = params * DTYPE_BYTES[cfg.model.dtype]
    if s.kind == "fsdp" and s.load == "per_rank":
        host = stored / t.num_nodes + t.devices * largest_tensor * 4
        note = "each node maps only its ranks' slices of the checkpoint (page cache)"
    elif s.kind == "fsdp" or (s.kind == "deepspeed" and s.zero_stage == 3):
        host = stored + t.devices * min(BROADCAST_GROUP_BYTES, largest_tensor * 4 + BROADCAST_GROUP_BYTES / 4)
        note = "node 0 maps the checkpoint (page cache); rank 0 sends it on a group at a time"
    else:
        master = 4 if keeps_fp32_master_weights(s) else 0
        host = t.devices * params * (DTYPE_BYTES[cfg.model.dtype] + master)
        note = "every rank loads the whole model (and its fp32 copy)"
    optimizer_bytes = 12 + (2 if s.kind == "deepspeed" else 0)  # fp32 master + 2 AdamW moments (+ bf16 weights)
    kept = len([e for e in t.checkpoint_epochs if e <= t.max_epochs])
    # last.ckpt holds what trains: every weight, or an adapter run's adapters alone
    trained = params if trainable is None else trainable
    return DiskPlan(host, note, trained * optimizer_bytes, params * DTYPE_BYTES[t.save_dtype], kept)


def adapter_trainable_parameters(config, adapter_cfg, added_tokens: int) -> int:
    """Parameters an adapter run trains, counted on the architecture built on `meta` with the
    adapters applied as training applies them (the template's token rows included)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lima_recipes.model.adapter import apply_adapter

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    rows = list(range(config.vocab_size - max(added_tokens, 1), config.vocab_size))
    model = apply_adapter(model, adapter_cfg, rows, seed=0)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_plan(cfg: DictConfig, num_examples: int | None, examples_note: str, added_tokens: int = 1) -> Plan:
    from lima_recipes.data.batching import BatchShape
    from lima_recipes.model.dropout import residual_dropout_rates

    m, s, t = cfg.model, cfg.strategy, cfg.trainer
    world = t.devices * t.num_nodes
    config = architecture_config(m)  # the preset's sizes, or the checkpoint's config (model=hf)
    vocab = config.vocab_size + added_tokens
    config.vocab_size = vocab
    params = count_parameters(config)
    hidden, layers = config.hidden_size, config.num_hidden_layers
    w_b, g_b, o_b, c_b = _bytes_per_param(s)
    w_sh, g_sh, o_sh = _shards(s, world, t.devices)
    trainable = params
    if uses_adapter(cfg.get("adapter")):
        trainable = adapter_trainable_parameters(config, cfg.adapter, added_tokens)
        base_bytes = w_b if base_stays_fp32(s, cfg.adapter) else DTYPE_BYTES[m.dtype]
        # the frozen base has no gradients or optimizer state; the adapters train in fp32
        weights, grads, optim = (params * base_bytes + trainable * 4) / w_sh, trainable * g_b / g_sh, trainable * o_b / o_sh
    else:
        weights, grads, optim = params * w_b / w_sh, params * g_b / g_sh, params * o_b / o_sh
    if w_sh > 1:  # sharded weights are gathered one decoder layer at a time (plus one prefetched)
        layer = (params - 2 * vocab * hidden) / layers
        weights += 2 * layer * c_b
    offloaded = 0.0
    if s.cpu_offload:
        offloaded = optim + (grads if s.kind == "fsdp" else 0.0)
        optim = 0.0
        if s.kind == "fsdp" or (s.kind == "deepspeed" and s.zero_stage == 3):
            offloaded += params * w_b / w_sh
            weights -= params * w_b / w_sh
        if s.kind == "fsdp":
            grads = 0.0
    # DPO runs each pair as two rows (chosen and rejected) in one forward pass
    rows = t.micro_batch_size * (2 if cfg.stage.kind == "dpo" else 1)
    acts = activation_bytes(config, s, rows, cfg.data.max_length, vocab, c_b)
    shape = BatchShape(t.global_batch_size, t.micro_batch_size, world)
    steps = shape.steps_per_epoch(num_examples) if num_examples else None
    total = (t.max_steps if t.max_steps > 0 else steps * t.max_epochs) if steps else None
    return Plan(
        model=m.name, parameters=params - added_tokens * hidden * (1 if config.tie_word_embeddings else 2),
        trainable_parameters=trainable, added_tokens=added_tokens, world_size=world, strategy=s.name,
        precision=s.precision, memory=MemoryPlan(weights, grads, optim, acts, offloaded),
        examples=num_examples, examples_note=examples_note, steps_per_epoch=steps, total_steps=total,
        accumulation=shape.accumulation,
        dropout_by_layer=residual_dropout_rates(layers, m.residual_dropout if cfg.stage.dropout else 0.0),
        disk=disk_plan(cfg, params, vocab * hidden, trainable),
    )


def count_examples(cfg: DictConfig) -> tuple[int | None, str]:
    """Training examples if the data can be read here, else the preset's expected count."""
    from lima_recipes.data.sources import load_conversations, train_source
    from lima_recipes.errors import LimaError

    source = train_source(cfg.data)
    try:
        if cfg.stage.kind == "dpo":
            from lima_recipes.data.preferences import convert_pairs

            pairs = len(convert_pairs(source.records(), cfg.data.on_invalid, cfg.data.max_user_turns))
            return min(pairs, cfg.data.max_examples or pairs), f"pairs read from {source.description}"
        return len(load_conversations(source, cfg.data)), f"read from {source.description}"
    except LimaError as err:
        if cfg.data.expected_examples:
            return cfg.data.expected_examples, f"data.expected_examples ({source.description} not readable here)"
        return None, f"unknown: {err}"


def render_plan(plan: Plan, console=None, verdicts=None, host=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    gib = lambda b: f"{b / GIB:,.2f} GiB"  # noqa: E731
    table = Table(title=f"plan: {plan.model} on {plan.world_size} device(s), strategy={plan.strategy}, precision={plan.precision}")
    table.add_column("item")
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("parameters (published architecture)", f"{plan.parameters:,}")
    share = plan.trainable_parameters / max(plan.parameters, 1)
    table.add_row(f"trainable (+{plan.added_tokens} template token rows)", f"{plan.trainable_parameters:,}"
                  + (f" ({share:.2%}: adapters)" if share < 0.5 else ""))
    mem = plan.memory
    table.add_row("weights per device", gib(mem.weights))
    table.add_row("gradients per device", gib(mem.gradients))
    table.add_row("optimizer state per device", gib(mem.optimizer))
    table.add_row("activations per device (one micro-batch at max length)", gib(mem.activations))
    table.add_row("total per device (estimate)", gib(mem.total))
    if mem.cpu_offloaded:
        table.add_row("offloaded to CPU memory (all ranks of a node share it)", gib(mem.cpu_offloaded))
    table.add_row("training examples", f"{plan.examples:,}" if plan.examples else "?")
    table.add_row("  source", plan.examples_note)
    table.add_row("micro-batches accumulated per step per device", str(plan.accumulation))
    table.add_row("optimizer steps per epoch", f"{plan.steps_per_epoch:,}" if plan.steps_per_epoch else "?")
    table.add_row("optimizer steps in total", f"{plan.total_steps:,}" if plan.total_steps else "?")
    rates = plan.dropout_by_layer
    table.add_row("residual dropout, bottom -> top layer", f"{rates[0]:.2f} -> {rates[-1]:.2f} over {len(rates)} layers")
    disk = plan.disk
    seconds = lambda b: f"{b / WRITE_BYTES_PER_S:,.0f} s at 1 GB/s"  # noqa: E731
    table.add_row("host RAM per node while loading", f"{gib(disk.host_load_per_node)} ({disk.host_load_note})")
    if host is not None:
        table.add_row("  on this machine's RAM", host.line())
    table.add_row("last.ckpt (trained weights + AdamW state)", f"{gib(disk.last_checkpoint)}, {seconds(disk.last_checkpoint)}")
    table.add_row(f"each kept epoch and the export ({disk.kept_epochs} + 1)", f"{gib(disk.kept_epoch)}, {seconds(disk.kept_epoch)}")
    table.add_row("checkpoints on disk in all", gib(disk.total))
    for verdict in verdicts or ():
        table.add_row(f"on {plan.world_size} x {verdict.device}", verdict.line())
    console.print(table)


