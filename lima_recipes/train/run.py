"""One training run from a composed config: check -> data -> model -> Trainer -> fit -> export.

Every check that can fail without loading weights runs first, so a missing model, gated data or
impossible setting costs seconds, not a 65B load.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from lima_recipes.config import validate
from lima_recipes.config.fit import check_fits
from lima_recipes.config.resolvers import config_hash
from lima_recipes.data.batching import BatchShape
from lima_recipes.data.datamodule import LimaDataModule
from lima_recipes.data.dataset import load_or_tokenize
from lima_recipes.data.preferences import collate_pairs, load_preference_set
from lima_recipes.data.sources import check_available, dev_source, train_source
from lima_recipes.data.templates import build_template
from lima_recipes.errors import ConfigError, TrainingDivergedError
from lima_recipes.io import write_atomically
from lima_recipes.model.adapter import base_stays_fp32, template_token_ids, uses_adapter
from lima_recipes.model.build import DTYPES, build_model, check_weights_available, load_tokenizer, training_form
from lima_recipes.model.module import CausalLMModule, Placement
from lima_recipes.model.preference_module import PreferenceModule
from lima_recipes.stats import length_summary
from lima_recipes.train.callbacks import EpochCheckpoint
from lima_recipes.train.csv_log import AppendingCSVLogger, ForgetLogsAfterCheckpoint
from lima_recipes.train.reference import ReferenceStore, reference_key, weights_fingerprint
from lima_recipes.train.hf_checkpoint import model_files_writer, replace_dir, save_hf_model
from lima_recipes.train.strategies import (build_strategy, cluster_plugins, is_sharded, lightning_precision,
                                           uses_cpu_adam)

log = logging.getLogger(__name__)

COMPLETED = "COMPLETED"


def make_model(cfg: DictConfig, tokenizer, placement: Placement | None = None):
    """The model factory handed to the LightningModule (called once per rank). FSDP2 and ZeRO-3
    build their shards without a full copy on any rank; the others hold the whole model on every rank."""
    placement = placement or Placement()
    if is_sharded(cfg.strategy):
        from lima_recipes.train.sharded import build_sharded_model

        return build_sharded_model(cfg, tokenizer, placement)
    if placement.deepspeed_config is not None and cfg.strategy.zero_stage == 3:
        from lima_recipes.train.zero3 import build_zero3_model

        return build_zero3_model(cfg, tokenizer, placement.deepspeed_config, load=not placement.resuming)
    model = build_model(cfg.model, tokenizer, seed=cfg.run.seed)
    if base_stays_fp32(cfg.strategy, cfg.adapter):
        model = model.float()
    token_ids = template_token_ids(tokenizer, build_template(cfg.template))
    return training_form(model, cfg.model, cfg.strategy, cfg.adapter, token_ids, cfg.run.seed, cfg.stage.dropout)


def check_accelerator(cfg: DictConfig) -> None:
    if cfg.strategy.kind == "deepspeed" and not torch.cuda.is_available():
        raise ConfigError(f"strategy={cfg.strategy.name} needs CUDA GPUs and none is visible; on CPU use strategy=fsdp, ddp or auto")
    if cfg.adapter.kind == "qlora":
        if not torch.cuda.is_available():
            raise ConfigError("adapter=qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels) and none is visible; on CPU use adapter=lora")
        raise ConfigError("adapter=qlora: training on a 4-bit base is not built yet; use adapter=lora")


def resume_checkpoint(run_dir: Path) -> Path | None:
    """`last.ckpt` of an interrupted run (a file, or a directory for sharded strategies)."""
    path = run_dir / "checkpoints" / "last.ckpt"
    return path if path.exists() else None


def build_loggers(cfg: DictConfig, run_dir: Path, run_id: str, sweep: dict | None = None) -> list:
    """CSV always; W&B when asked, in the group of its sweep (else of its experiment), with the
    values a sweep varies as `key=value` tags and under `sweep` in the config, so W&B's table and
    parallel-coordinates views line up without hand work."""
    # Every step's row reaches the file at once: a killed job keeps its curve up to the kill.
    loggers = [AppendingCSVLogger(save_dir=str(run_dir), name="", version="", flush_logs_every_n_steps=1)]
    if cfg.logger.wandb:
        mode = cfg.logger.mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        config = OmegaConf.to_container(cfg, resolve=True)
        tags = [cfg.run.name, cfg.model.name, cfg.data.name, *cfg.logger.tags]
        if sweep is not None:
            config["sweep"] = sweep
            tags += [f"{key}={value}"[:64] for key, value in sweep.get("swept", {}).items()]  # W&B's tag limit
        loggers.append(
            WandbLogger(
                project=cfg.logger.project, entity=cfg.logger.entity, name=f"{cfg.run.name}-{run_id}",
                group=sweep["name"] if sweep else cfg.run.name, job_type="train", id=run_id, save_dir=str(run_dir),
                offline=mode == "offline",
                tags=list(dict.fromkeys(tags)), config=config,
            )
        )
    return loggers


def prepare(cfg: DictConfig):
    """Everything before the model: checks, tokenizer, tokenized data and the batch shape."""
    validate(cfg)
    check_fits(cfg)  # the plan's verdict on the visible devices, before any data or weight is read
    check_accelerator(cfg)
    template = build_template(cfg.template)
    train_src, dev_src = train_source(cfg.data), dev_source(cfg.data)
    check_available(train_src)
    if dev_src is not None:
        check_available(dev_src)
    check_weights_available(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    template.install(tokenizer)
    if is_preference_stage(cfg):
        train_set, cache = load_preference_set(train_src, tokenizer, template, cfg.data, is_train=True), "not used"
        dev_set = load_preference_set(dev_src, tokenizer, template, cfg.data, is_train=False) if dev_src else None
    else:
        train_set, hit = load_or_tokenize(train_src, tokenizer, template, cfg.data, is_train=True)
        cache = "hit" if hit else "miss (written)"
        dev_set = load_or_tokenize(dev_src, tokenizer, template, cfg.data, is_train=False)[0] if dev_src else None
    unit = "pairs" if is_preference_stage(cfg) else "examples"
    if len(train_set) == 0:
        raise ConfigError(f"{train_src.description}: no trainable {unit} (skipped: {train_set.stats['skipped']})")
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    shape = BatchShape(cfg.trainer.global_batch_size, cfg.trainer.micro_batch_size, world)
    stats = train_set.stats
    log.info("data: %d training %s from %s; %d cut at data.max_length=%d; %d skipped %s; tokenized cache %s",
             len(train_set), unit, stats["source"], stats["truncated"], cfg.data.max_length,
             sum(stats["skipped"].values()), stats["skipped"] or "", cache)
    return template, tokenizer, train_set, dev_set, shape


def is_preference_stage(cfg: DictConfig) -> bool:
    return cfg.stage.kind == "dpo"


def reference_stores(cfg: DictConfig, tokenizer, template, train_set, dev_set) -> dict[str, ReferenceStore]:
    """Where each split's reference log-probabilities are cached (see train/reference.py)."""
    root = Path(cfg.stage.reference_cache_dir)
    weights = weights_fingerprint(cfg.model, root)
    stores = {}
    for split, source, tokenized in (("train", train_source(cfg.data), train_set), ("dev", dev_source(cfg.data), dev_set)):
        if tokenized is not None and source is not None:
            key = reference_key(cfg, source, tokenizer, template, split == "train", weights)
            stores[split] = ReferenceStore(root / f"{key}.npz", len(tokenized), source.description)
    return stores


def make_module(cfg: DictConfig, tokenizer, template, train_set, dev_set, steps: int, resuming: bool) -> CausalLMModule:
    """The SFT module, or the DPO one with its reference caches."""
    options = dict(seed=cfg.run.seed, cpu_adam=uses_cpu_adam(cfg.strategy),
                   padding_mask_in_attention=cfg.model.padding_mask_in_attention, resuming=resuming)
    factory = partial(make_model, cfg, tokenizer)
    if is_preference_stage(cfg):
        return PreferenceModule(factory, cfg.optim, steps, cfg.stage, reference_stores(cfg, tokenizer, template, train_set, dev_set),
                                **options)
    return CausalLMModule(factory, cfg.optim, steps, **options)


def total_steps(cfg: DictConfig, shape: BatchShape, num_examples: int) -> int:
    if cfg.trainer.max_steps > 0:
        return cfg.trainer.max_steps
    return shape.steps_per_epoch(num_examples) * cfg.trainer.max_epochs


def make_datamodule(cfg: DictConfig, tokenizer, train_set, dev_set, shape: BatchShape) -> LimaDataModule:
    return LimaDataModule(
        train_set, dev_set, shape, tokenizer.pad_token_id, cfg.run.seed, cfg.data.group_by_length,
        cfg.data.megabatch_factor, cfg.data.pad_to_multiple_of, cfg.data.num_workers,
        collate_fn=collate_pairs if is_preference_stage(cfg) else None,
    )


@dataclass
class Assembled:
    """Everything `make train` builds before `fit`: what a run (and the benchmark) executes."""

    trainer: L.Trainer
    module: CausalLMModule
    datamodule: LimaDataModule
    checkpoints: EpochCheckpoint
    tokenizer: object
    template: object
    loggers: list
    run_id: str
    train_set: object


def assemble(cfg: DictConfig, run_dir: Path, sweep: dict | None = None, extra_callbacks: tuple = ()) -> Assembled:
    run_id = config_hash(cfg)
    template, tokenizer, train_set, dev_set, shape = prepare(cfg)
    L.seed_everything(cfg.run.seed, workers=True, verbose=False)
    steps = total_steps(cfg, shape, len(train_set))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "data_stats.json").write_text(json.dumps(
        {"train": train_set.stats, "train_lengths": length_summary(train_set.lengths),
         "dev": dev_set.stats if dev_set else None, "steps_per_epoch": shape.steps_per_epoch(len(train_set)),
         "total_steps": steps, "accumulation": shape.accumulation}, indent=2))

    module = make_module(cfg, tokenizer, template, train_set, dev_set, steps, resuming=resume_checkpoint(run_dir) is not None)
    kept = [e for e in cfg.trainer.checkpoint_epochs if e <= cfg.trainer.max_epochs]
    if cfg.trainer.checkpoint_epochs and not kept:
        log.warning("no epoch of trainer.checkpoint_epochs=%s is reached within trainer.max_epochs=%d; "
                    "only last.ckpt and the final export are written", list(cfg.trainer.checkpoint_epochs), cfg.trainer.max_epochs)
    datamodule = make_datamodule(cfg, tokenizer, train_set, dev_set, shape)
    checkpoints = EpochCheckpoint(run_dir / "checkpoints", list(cfg.trainer.checkpoint_epochs), cfg.trainer.save_last,
                                  cfg.trainer.checkpoint_every_n_steps,
                                  save_weights=partial(save_run_model, cfg, tokenizer, template, run_id))
    callbacks: list[L.Callback] = [checkpoints, ForgetLogsAfterCheckpoint(), *extra_callbacks]
    if cfg.trainer.enable_progress_bar:
        callbacks.append(RichProgressBar() if _rich_terminal() else TQDMProgressBar(refresh_rate=max(1, shape.accumulation)))
    loggers = build_loggers(cfg, run_dir, run_id, sweep)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=build_strategy(cfg.strategy, cfg.trainer.micro_batch_size, shape.world_size),
        precision=lightning_precision(cfg.strategy),
        plugins=cluster_plugins(),
        max_epochs=cfg.trainer.max_epochs,
        max_steps=cfg.trainer.max_steps,
        accumulate_grad_batches=shape.accumulation,
        gradient_clip_val=cfg.optim.gradient_clip_val,
        logger=loggers,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=cfg.trainer.enable_progress_bar,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        check_val_every_n_epoch=cfg.trainer.val_every_n_epochs,
        deterministic=cfg.trainer.deterministic,
        fast_dev_run=cfg.trainer.fast_dev_run,
        default_root_dir=str(run_dir),
        enable_model_summary=False,
    )
    return Assembled(trainer, module, datamodule, checkpoints, tokenizer, template, loggers, run_id, train_set)


def run_training(cfg: DictConfig, run_dir: str | Path, sweep: dict | None = None) -> dict:
    run_dir = Path(run_dir)
    if (run_dir / COMPLETED).is_file():
        log.info("%s is trained; delete its COMPLETED file to export again (its folder, to train again)", run_dir)
        return json.loads((run_dir / COMPLETED).read_text())
    run = assemble(cfg, run_dir, sweep)
    failed = True
    try:
        result = fit_and_export(cfg, run_dir, run.run_id, run.trainer, run.module, run.datamodule, run.checkpoints,
                                run.tokenizer, run.template)
        failed = False
        return result
    finally:
        # Jobs of a sweep share one process: each must close its W&B run, or the next job's
        # logger would write into it; a failed job's run is marked failed.
        if cfg.logger.wandb:
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1 if failed else 0)


def save_run_model(cfg: DictConfig, tokenizer, template, run_id: str, trainer: L.Trainer, module, path: Path,
                   metadata: dict | None = None) -> Path:
    """A kept epoch or the export: a complete HF directory in `trainer.save_dtype` (collective)."""
    dtype = DTYPES[cfg.trainer.save_dtype]
    meta = {"run_id": run_id, "template": template.name, "model": cfg.model.name, "data": cfg.data.name,
            "dtype": cfg.trainer.save_dtype, **(metadata or {})}
    if is_preference_stage(cfg):
        meta["stage"] = {"kind": cfg.stage.kind, "loss": cfg.stage.loss, "beta": cfg.stage.beta,
                         "sft_weight": cfg.stage.sft_weight, "reference": str(cfg.model.path)}
    if uses_adapter(cfg.adapter):
        meta["adapter"] = {"kind": cfg.adapter.kind, "rank": cfg.adapter.rank, "alpha": cfg.adapter.alpha, "merged": True}
    files = model_files_writer(module.model, dtype, tokenizer, template.end_of_turn(tokenizer), cfg.generation, meta)
    if cfg.adapter.save_adapter and uses_adapter(cfg.adapter):
        files = with_adapter_files(files, module.model)
    return save_hf_model(trainer, module.model, path, dtype, files)


def with_adapter_files(write_files, model):
    """Rank 0 also writes the adapter alone in PEFT's format (`adapter/`), for peft users."""
    def write(out_dir: Path) -> None:
        write_files(out_dir)
        model.save_pretrained(out_dir / "adapter")
    return write


def fit_and_export(cfg, run_dir: Path, run_id: str, trainer: L.Trainer, module, datamodule, checkpoints, tokenizer, template) -> dict:
    resume = resume_checkpoint(run_dir)
    before = None
    if cfg.trainer.validate_before_training and resume is None and datamodule.dev_set is not None:
        before = trainer.validate(module, datamodule=datamodule, verbose=False)[0].get("val/loss")
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    except TrainingDivergedError as err:
        kept = checkpoints.last_good or resume
        raise TrainingDivergedError(f"{err}; last good checkpoint: {kept or 'none (diverged in the first epoch)'}") from None

    result = {"run_dir": str(run_dir), "run_id": run_id, "steps": trainer.global_step,
              "epochs": trainer.current_epoch, "kept_checkpoints": sorted(str(p) for p in checkpoints.kept())}
    if before is not None:
        result["val/loss_before"] = before
    for key in ("train/loss", "val/loss"):
        # A run resumed after its last step logs nothing new: its metrics file has the values.
        value = trainer.callback_metrics.get(key)
        value = float(value) if value is not None else last_logged(run_dir / "metrics.csv", key)
        if value is not None:
            result[key] = value
    export_dir = run_dir / "export"
    export_epoch = cfg.trainer.export_epoch
    if export_epoch is None:
        save_run_model(cfg, tokenizer, template, run_id, trainer, module, export_dir, {"epoch": "final"})
    elif trainer.is_global_zero:
        # A kept epoch is already a complete HF directory: the export is a copy of it.
        chosen = EpochCheckpoint.epoch_path(checkpoints.dirpath, export_epoch)
        if not chosen.exists():
            raise ConfigError(f"trainer.export_epoch={export_epoch}: {chosen} was not written; set trainer.export_epoch=null")
        staging = export_dir.with_name("export.partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(chosen, staging)
        update_metadata(staging, {"epoch": export_epoch})
        replace_dir(staging, export_dir)
    if trainer.is_global_zero:
        result["export"] = str(export_dir)
        write_atomically(run_dir / COMPLETED, json.dumps(result, indent=2))
        log.info("exported %s", export_dir)
    return result


def update_metadata(model_dir: Path, values: dict) -> None:
    from lima_recipes.model.export import METADATA

    path = model_dir / METADATA
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update(values)
    path.write_text(json.dumps(meta, indent=2, default=str))


def last_logged(metrics_csv: Path, key: str) -> float | None:
    """The last value of a metric in Lightning's metrics.csv (None when never logged)."""
    import csv

    if not metrics_csv.is_file():
        return None
    with metrics_csv.open() as handle:
        values = [row[key] for row in csv.DictReader(handle) if row.get(key)]
    return float(values[-1]) if values else None


def _rich_terminal() -> bool:
    import sys

    return sys.stdout.isatty() and os.environ.get("CI") is None
