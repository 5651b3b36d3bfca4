"""One training measurement, run in a fresh process by `make bench` (lima_recipes/bench/training.py)
so that its peak memory is its own: `python -m lima_recipes.bench.train_child '<spec json>'`
prints one JSON line.

Every variant trains the same tiny Llama on the same tokenized examples (ours tokenizes them, the
others receive ours), with the same optimizer settings, global batch, micro-batch and max length.
The clock starts after `warmup` optimizer steps and stops at the last step; trained tokens are the
unmasked next-token targets of the timed steps.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import record_function

from lima_recipes.data.tokenize import IGNORE_INDEX


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the parent.
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024


class Clock:
    """Per optimizer step: its wall and CPU seconds and its trained, real and padded-slot token
    counts. A step lasts from the end of the previous one (or the last `restart`) to `step_done`,
    so time spent on something else between steps (a paired loop's step) can be left out. The
    first `warmup` steps are untimed; the timed steps are cut into `windows` of equal length,
    each a repeat of the measurement (median, min and max over them)."""

    def __init__(self, warmup: int, windows: int, window_steps: int):
        self.warmup, self.windows, self.window_steps = warmup, windows, window_steps
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.counts: list[tuple[int, int, int]] = []
        self._pending: list[tuple] = []
        self.restart()

    @property
    def total_steps(self) -> int:
        return self.warmup + self.windows * self.window_steps

    def restart(self) -> None:
        """The next step starts now: whatever ran since the last step is not this clock's."""
        self._mark = (time.perf_counter(), time.process_time())

    def micro_batch(self, labels: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        # kept as tensors until the step ends: reading a GPU tensor now would wait for the GPU
        real = attention_mask.sum() if attention_mask is not None else labels.numel()
        self._pending.append(((labels[:, 1:] != IGNORE_INDEX).sum(), real, labels.numel()))

    def step_done(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the step's work done, not only launched
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall.append(wall - self._mark[0])
        self.cpu.append(cpu - self._mark[1])
        self.counts.append(tuple(sum(int(micro[k]) for micro in self._pending) for k in range(3)))
        self._pending = []
        self.restart()  # the counting above is the clock's own work, not the step's

    def result(self) -> dict:
        if len(self.wall) < self.total_steps:
            raise RuntimeError(f"only {len(self.wall)} of {self.total_steps} steps ran")
        windows = []
        for w in range(self.windows):
            steps = slice(self.warmup + w * self.window_steps, self.warmup + (w + 1) * self.window_steps)
            seconds, cpu = sum(self.wall[steps]), sum(self.cpu[steps])
            trained = sum(c[0] for c in self.counts[steps])
            windows.append({"seconds": seconds, "seconds_per_step": seconds / self.window_steps, "cpu_seconds_per_step": cpu / self.window_steps,
                            "trained_tokens_per_s": trained / seconds})
        timed = self.counts[self.warmup : self.total_steps]
        real, slots = sum(c[1] for c in timed), sum(c[2] for c in timed)
        # the untimed steps' wall time: the first step pays one-off costs (a compilation, allocations)
        return {"windows": windows, "timed_steps": len(timed), "trained_tokens": sum(c[0] for c in timed),
                "pad_fraction": 1 - real / slots if slots else 0.0, "warmup_seconds": sum(self.wall[: self.warmup])}


class PlainLoop:
    """The hand-written loop: forward, masked loss, backward, AdamW step, zero_grad, one optimizer
    step per call. A framework's process can run it between its own steps (`spec["paired"]`), so
    both are timed in alternation on the same machine state: on a shared machine the speed drifts
    by more than the overhead being measured, and a drift then falls on both alike."""

    def __init__(self, spec: dict, cfg, model, rows: list[dict]):
        o = cfg.optim
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        self.rows = rows
        self.micro_batch = spec["micro_batch"]
        self.accumulation = spec["global_batch"] // spec["micro_batch"]
        self.order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(spec["seed"])).tolist()
        self.position = 0
        self.clock = Clock(spec["warmup"], spec["windows"], spec["window_steps"])

    def step(self) -> None:
        import torch.nn.functional as F

        self.clock.restart()
        self.model.train()
        for _ in range(self.accumulation):
            chunk = [self.rows[self.order[(self.position + k) % len(self.rows)]] for k in range(self.micro_batch)]
            self.position += self.micro_batch
            input_ids = torch.stack([r["input_ids"] for r in chunk])  # fixed-shape examples
            labels = torch.stack([r["labels"] for r in chunk])
            with record_function("plain: forward and loss"):
                logits = self.model(input_ids=input_ids).logits
                # the same arithmetic as ours (labels shifted, not logits), so the ratio is the framework's cost
                targets = torch.full_like(labels, IGNORE_INDEX)
                targets[:, :-1] = labels[:, 1:]
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
            with record_function("plain: backward"):
                (loss / self.accumulation).backward()
            self.clock.micro_batch(labels, None)
        with record_function("plain: optimizer step"):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.clock.step_done()


def our_config(spec: dict, workdir: Path):
    from lima_recipes.config import compose

    overrides = [
        "data=jsonl", f"data.path={spec['data']}", f"data.max_length={spec['max_length']}", f"data.cache_dir={spec.get('cache_dir') or workdir / 'cache'}",
        f"trainer.global_batch_size={spec['global_batch']}", f"trainer.micro_batch_size={spec['micro_batch']}",
        "trainer.checkpoint_epochs=[]", "trainer.save_last=false", f"trainer.accelerator={spec.get('accelerator', 'cpu')}",
        f"logger={spec.get('logger', 'csv')}", f"run.output_root={workdir}/outputs", f"run.seed={spec['seed']}",
        # the clock's steps, across epochs when the data is smaller than that
        f"trainer.max_steps={spec['warmup'] + spec['windows'] * spec['window_steps']}", "trainer.max_epochs=1000",
        "trainer.val_every_n_epochs=1000", *spec.get("overrides", []),
    ]
    return compose(overrides)


def tokenized(spec: dict, workdir: Path):
    """Our tokenization of the data file: the examples every variant trains on."""
    from lima_recipes.train.run import prepare

    _, tokenizer, train_set, _, _ = prepare(our_config(spec, workdir))
    return tokenizer, train_set


def _rows(train_set) -> list[dict]:
    return [{"input_ids": torch.from_numpy(i.astype("int64")), "labels": torch.from_numpy(lab.astype("int64"))}
            for i, lab in zip(train_set.input_ids, train_set.labels)]


def _paired_plain(spec: dict, cfg, tokenizer, train_set) -> PlainLoop | None:
    """The plain loop on its own copy of the model, to run between the framework's steps: eager
    whatever the framework's variant compiles."""
    import copy

    from lima_recipes.train.run import make_model

    if not spec.get("paired"):
        return None
    cfg = copy.deepcopy(cfg)
    cfg.strategy.compile = False
    return PlainLoop(spec, cfg, make_model(cfg, tokenizer), _rows(train_set))


def _after_step(clock: Clock, plain: PlainLoop | None) -> None:
    clock.step_done()
    if plain is not None:
        plain.step()
        clock.restart()


def _with_paired(result: dict, plain: PlainLoop | None) -> dict:
    if plain is not None:
        result["paired_plain"] = plain.clock.result()
    return result


def run_ours(spec: dict, workdir: Path) -> dict:
    import lightning as L

    from lima_recipes.train.run import assemble

    clock = Clock(spec["warmup"], spec["windows"], spec["window_steps"])

    class Timer(L.Callback):
        def __init__(self):
            self.last_step = 0
            self.plain: PlainLoop | None = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.micro_batch(batch["labels"], batch["attention_mask"])
            if trainer.global_step != self.last_step:
                self.last_step = trainer.global_step
                _after_step(clock, self.plain)

    cfg = our_config(spec, workdir)
    timer = Timer()
    run = assemble(cfg, workdir / "run", extra_callbacks=(timer,))
    timer.plain = _paired_plain(spec, cfg, run.tokenizer, run.train_set)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return {**_with_paired(clock.result(), timer.plain), "losses": _logged_losses(workdir / "run")}


def _logged_losses(run_dir: Path) -> list[float]:
    """train/loss of every optimizer step as the CSV logger wrote it (variants that must compute
    the same are compared on it)."""
    import csv

    files = sorted(run_dir.rglob("metrics.csv"))
    if not files:
        return []
    return [float(row["train/loss"]) for row in csv.DictReader(files[0].open()) if row.get("train/loss")]


def _model_and_data(spec: dict, workdir: Path):
    from lima_recipes.train.run import make_model

    tokenizer, train_set = tokenized(spec, workdir)
    cfg = our_config(spec, workdir)
    # the model `make train` trains, LIMA's residual dropout included, so every variant computes the same
    model = make_model(cfg, tokenizer)
    return cfg, tokenizer, model, train_set


def _hf_arguments(spec: dict, cfg, workdir: Path, cls=None, **extra):
    from transformers import TrainingArguments

    cls = cls or TrainingArguments
    o = cfg.optim
    return cls(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=spec["micro_batch"],
        gradient_accumulation_steps=spec["global_batch"] // spec["micro_batch"],
        max_steps=spec["warmup"] + spec["windows"] * spec["window_steps"], learning_rate=o.lr, weight_decay=o.weight_decay, adam_beta1=o.betas[0],
        adam_beta2=o.betas[1], lr_scheduler_type="linear", warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, seed=spec["seed"], dataloader_num_workers=0, disable_tqdm=False, **extra,
    )


def _hf_clock_callback(clock: Clock, plain: PlainLoop | None = None):
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            _after_step(clock, plain)

    return Timer()


def _counting(collate, clock: Clock):
    def wrapped(features):
        batch = collate(features)
        clock.micro_batch(batch["labels"], batch.get("attention_mask"))
        return batch

    return wrapped


def _hf_features(tokenizer, examples):
    """Our tokenized (input_ids, labels) as HF Trainer examples, and the collator a user would
    pick for them: each micro-batch padded to its longest example, labels padded with -100."""
    from transformers import DataCollatorForSeq2Seq

    features = [{"input_ids": ids.tolist(), "attention_mask": [1] * len(ids), "labels": labels.tolist()} for ids, labels in examples]
    return features, DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)


def run_hf(spec: dict, workdir: Path) -> dict:
    """HF Trainer, as a user would set it up: its sampler (random, or LengthGroupedSampler with
    group_by_length), and a collator that pads each micro-batch to its longest example."""
    from transformers import Trainer

    cfg, tokenizer, model, train_set = _model_and_data(spec, workdir)
    clock = Clock(spec["warmup"], spec["windows"], spec["window_steps"])
    plain = _paired_plain(spec, cfg, tokenizer, train_set)
    features, collate = _hf_features(tokenizer, zip(train_set.input_ids, train_set.labels))
    args = _hf_arguments(spec, cfg, workdir, train_sampling_strategy=spec.get("sampling", "random"), remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=_counting(collate, clock),
                      callbacks=[_hf_clock_callback(clock, plain)])
    trainer.train()
    return _with_paired(clock.result(), plain)


def run_trl(spec: dict, workdir: Path) -> dict:
    """TRL's SFTTrainer on the same tokens, loss on the responses only (completion_mask),
    padding-free: examples concatenated with restarting position ids. transformers turns those
    into a block-diagonal causal mask, so attention stays inside each example on this machine."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    cfg, tokenizer, model, train_set = _model_and_data(spec, workdir)
    clock = Clock(spec["warmup"], spec["windows"], spec["window_steps"])
    table = datasets.Dataset.from_dict({
        "input_ids": [ids.tolist() for ids in train_set.input_ids],
        "completion_mask": [(labels != IGNORE_INDEX).astype("int64").tolist() for labels in train_set.labels],
    })
    # SFTConfig turns on bf16 autocast and activation checkpointing by default; the other variants
    # train in fp32 without checkpointing, so both are set to match (as our trainer.precision and
    # trainer.activation_checkpointing are)
    args = _hf_arguments(spec, cfg, workdir, cls=SFTConfig, padding_free=spec.get("padding_free", True), max_length=None,
                         completion_only_loss=True, dataset_kwargs={"skip_prepare_dataset": False},
                         bf16=False, gradient_checkpointing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=table, processing_class=tokenizer,
                         callbacks=[_hf_clock_callback(clock)])
    collate = trainer.data_collator
    trainer.data_collator = _counting(collate, clock)
    trainer.train()
    return clock.result()


def _loader_padding(batches) -> float:
    real = slots = 0
    for batch in batches:
        mask = batch.get("attention_mask")
        real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        slots += batch["input_ids"].numel()
    return 1 - real / slots


def run_padding(spec: dict, workdir: Path) -> dict:
    """The padded share of one epoch through each variant's own data loader (no training): cheap
    enough to run on the whole mix where training is timed on a subset."""
    from transformers import Trainer

    from lima_recipes.train.run import make_datamodule, prepare

    cfg = our_config(spec, workdir)
    _, tokenizer, train_set, _, shape = prepare(cfg)
    result = {"ours": _loader_padding(make_datamodule(cfg, tokenizer, train_set, None, shape).train_dataloader())}
    features, collate = _hf_features(tokenizer, zip(train_set.input_ids, train_set.labels))
    for sampling in spec["hf_sampling"]:
        args = _hf_arguments(spec, cfg, workdir, train_sampling_strategy=sampling, remove_unused_columns=False)
        trainer = Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=features, data_collator=collate)
        result[f"hf_{sampling}"] = _loader_padding(trainer.get_train_dataloader())
    return {"pad_fraction": result}


def run_idle(spec: dict, workdir: Path) -> dict:
    """Everything but training (imports, tokenized data, the model): the memory every variant pays
    before its first step, subtracted to compare a peak with `make plan`'s estimate."""
    import lightning  # noqa: F401

    _model_and_data(spec, workdir)
    return {}


OP_KINDS = (
    ("matrix multiplies", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention kernel", ("aten::_scaled_dot_product", "aten::scaled_dot_product")),
    ("loss (log-softmax, NLL)", ("aten::_log_softmax", "aten::nll_loss", "aten::log_softmax")),
)
PHASES = ("plain: forward and loss", "plain: backward", "plain: optimizer step")


def run_profile(spec: dict, workdir: Path) -> dict:
    """Where one plain-loop optimizer step spends its CPU time, after a warm-up step: the phases
    (inclusive), and operators by self time: matrix multiplies, the attention kernel, the loss,
    the AdamW step (inclusive: its elementwise updates) and everything else."""
    from torch.profiler import ProfilerActivity, profile

    cfg, _, model, train_set = _model_and_data(spec, workdir)
    loop = PlainLoop({**spec, "warmup": 1, "windows": 1, "window_steps": 1}, cfg, model, _rows(train_set))
    loop.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loop.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    phases = {name: sum(e.cpu_time_total for e in events if e.key == name) / total for name in PHASES}
    kinds = {name: sum(e.self_cpu_time_total for e in events if e.key.startswith(prefixes)) / total for name, prefixes in OP_KINDS}
    kinds["AdamW step"] = phases["plain: optimizer step"]
    kinds["everything else"] = max(0.0, 1.0 - sum(kinds.values()))
    top = sorted(((e.key, e.self_cpu_time_total) for e in events if e.key not in PHASES), key=lambda op: -op[1])[:8]
    return {"share_by_kind": kinds, "share_by_phase": phases, "top_ops": [{"op": k, "share": t / total} for k, t in top],
            "profiled_cpu_seconds": total / 1e6}


RUNNERS = {"ours": run_ours, "hf": run_hf, "trl": run_trl, "idle": run_idle, "padding": run_padding, "profile": run_profile}


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("inductor_cache"):
        # a compiled variant's first step then pays the whole compilation, as on a fresh machine
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = spec["inductor_cache"]
    torch.manual_seed(spec["seed"])
    torch.set_num_threads(spec.get("threads", os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        result = RUNNERS[spec["runner"]](spec, Path(tmp))
    result["peak_rss_mb"] = peak_rss_mb()
    if torch.cuda.is_available():
        result["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
