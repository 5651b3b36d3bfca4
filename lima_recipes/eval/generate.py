"""Generate responses with LIMA's decoding from an exported model, batched, N samples per prompt.

Prompts are rendered with the export's own chat template (the one it was trained with), left
padded, and batched by length. Each batch is seeded from the run seed and its first prompt's
index, so a re-run reproduces every response.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import Progress

from lima_recipes.errors import TrainingDivergedError, WeightsNotFoundError
from lima_recipes.eval.prompts import Prompt


def resolve_export(run: str | Path) -> Path:
    """A run directory's export/, or an export directory itself."""
    run = Path(run)
    for candidate in (run / "export", run):
        if (candidate / "config.json").is_file():
            return candidate
    raise WeightsNotFoundError(f"run={run}: neither it nor its export/ holds a model (config.json); pass a run or export directory")


@dataclass
class Generation:
    id: str
    prompt: str
    response: str
    sample: int
    model: str
    decoding: dict
    seed: int
    prompt_tokens: int
    response_tokens: int
    stopped_at_eot: bool
    """The response ended with the end-of-turn token rather than at max_new_tokens."""


def decoding_settings(generation_cfg) -> dict:
    return {
        "do_sample": generation_cfg.do_sample,
        "top_p": generation_cfg.top_p,
        "temperature": generation_cfg.temperature,
        "repetition_penalty": generation_cfg.repetition_penalty,
        "max_new_tokens": generation_cfg.max_new_tokens,
    }


def load_for_generation(export_dir: Path, generation_cfg=None):
    """Model (on the accelerator when there is one: generation.device/dtype), tokenizer and stop ids."""
    from transformers import AutoTokenizer, GenerationConfig

    from lima_recipes.eval.placement import load_causal_lm, requested

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    model = load_causal_lm(export_dir, *requested(generation_cfg))
    eos = GenerationConfig.from_pretrained(export_dir).eos_token_id
    return model, tokenizer, eos


def prompt_text(messages: list[dict[str, str]], tokenizer) -> str:
    """What the model is given: the conversation so far through the export's own chat template
    (which adds the run's system prompt), ending in the generation prompt."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def generate(prompts: list[Prompt], model, tokenizer, eos_token_id, generation_cfg, num_samples: int = 1,
             batch_size: int = 8, seed: int = 1234, model_name: str = "") -> list[Generation]:
    decoding = decoding_settings(generation_cfg)
    texts = [prompt_text(p.messages, tokenizer) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    eos_ids = set(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id])
    results: dict[int, list[Generation]] = {}
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("generating", total=len(prompts))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            torch.manual_seed(seed * 100_003 + batch[0])
            try:
                with torch.no_grad():
                    output = model.generate(
                        **encoded, **decoding, num_return_sequences=num_samples,
                        eos_token_id=eos_token_id, pad_token_id=tokenizer.pad_token_id,
                    )
            except RuntimeError as err:
                if "probability tensor contains" not in str(err):
                    raise
                raise TrainingDivergedError(f"{model_name or 'the model'}: sampling failed, its next-token probabilities hold "
                                            "inf or nan: the weights have diverged (see train/loss and val/loss in the run's "
                                            "metrics.csv)") from None
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            for row, tokens in enumerate(new_tokens):
                index = batch[row // num_samples]
                tokens = tokens.tolist()
                cut = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
                body = tokens if cut is None else tokens[:cut]
                results.setdefault(index, []).append(Generation(
                    id=prompts[index].id, prompt=prompts[index].text,
                    response=tokenizer.decode(body, skip_special_tokens=True).strip(),
                    sample=row % num_samples, model=model_name, decoding=decoding, seed=seed,
                    prompt_tokens=lengths[index], response_tokens=len(body), stopped_at_eot=cut is not None,
                ))
            progress.advance(task, len(batch))
    return [g for i in range(len(prompts)) for g in results[i]]


def write_generations(generations: list[Generation], path: Path) -> None:
    from lima_recipes.io import write_jsonl

    write_jsonl(path, (asdict(g) for g in generations))


def load_run_start(run_dir: Path, generation_cfg=None):
    """The model a training run started from, as its first step saw it: the pretrained weights
    (or the seeded random init) with the run's template installed and the vocabulary grown under
    the run's seed; its end-of-turn token stops generation. The "before" of a before/after pair."""
    from omegaconf import OmegaConf

    from lima_recipes.data.templates import build_template
    from lima_recipes.eval.placement import choose_placement, requested
    from lima_recipes.model.build import build_model, load_tokenizer

    config = run_dir / "config.yaml"
    if not config.is_file():
        raise WeightsNotFoundError(f"run={run_dir}: no config.yaml there; at=start needs a training run directory")
    cfg = OmegaConf.load(config)
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    tokenizer.padding_side = "left"
    model = build_model(cfg.model, tokenizer, seed=cfg.run.seed)
    placement = choose_placement(sum(p.numel() for p in model.parameters()), *requested(generation_cfg))
    model = model.to(placement.device, placement.dtype).eval()
    return model, tokenizer, tokenizer.convert_tokens_to_ids(template.end_of_turn(tokenizer))


def generate_to_file(run: str | Path, prompts_cfg, generation_cfg, num_samples: int, batch_size: int, seed: int,
                     output: str | Path | None = None, at: str = "export") -> tuple[Path, dict]:
    """`make generate` and the evaluation after training: the export's responses to a prompt set
    (or, at="start", those of the model the run started from), written to `output` (default
    <run>/generations/<prompts>[-start].jsonl) with the automatic metrics beside it
    (.metrics.json). Returns the path and the metrics."""
    from lima_recipes.errors import ConfigError
    from lima_recipes.eval.metrics import automatic_metrics
    from lima_recipes.eval.prompts import load_prompts
    from lima_recipes.io import write_atomically

    if at not in ("export", "start"):
        raise ConfigError(f"at={at!r} is not one of export, start")
    prompts = load_prompts(prompts_cfg)
    if at == "start":
        run_dir = Path(run)
        model, tokenizer, eos = load_run_start(run_dir, generation_cfg)
        name = f"{run_dir}@start"
    else:
        export = resolve_export(run)
        run_dir = export.parent if export.name == "export" else export
        model, tokenizer, eos = load_for_generation(export, generation_cfg)
        name = str(export)
    generations = generate(prompts, model, tokenizer, eos, generation_cfg, num_samples, batch_size, seed, model_name=name)
    suffix = "-start" if at == "start" else ""
    path = Path(output) if output else run_dir / "generations" / f"{prompts_cfg.name}{suffix}.jsonl"
    write_generations(generations, path)
    metrics = automatic_metrics([asdict(g) for g in generations])
    write_atomically(path.with_suffix(".metrics.json"), json.dumps(metrics, indent=2))
    return path, metrics
