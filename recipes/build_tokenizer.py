"""Build the tiny model's tokenizer from the shipped sample data (re-run after editing the data).

    python recipes/build_tokenizer.py            # writes lima_recipes/assets/tiny_tokenizer/

A byte-level BPE, so any text (code, other languages, emoji) tokenizes without unknown tokens;
2,048 entries keep the tiny model's embedding small. Chat-template tokens are not added here:
templates add their own at training time, as they do for real models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

ASSETS = Path(__file__).resolve().parents[1] / "lima_recipes" / "assets"
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def sample_texts(sample_dir: Path) -> list[str]:
    texts = []
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        for line in (sample_dir / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                texts.extend(record.get("conversations", []) or [record.get("prompt", "")])
    return texts


def build(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=2048, **SPECIAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-dir", type=Path, default=ASSETS / "sample")
    parser.add_argument("--out", type=Path, default=ASSETS / "tiny_tokenizer")
    parser.add_argument("--vocab-size", type=int, default=2048)
    args = parser.parse_args()
    tokenizer = build(sample_texts(args.sample_dir), args.vocab_size)
    tokenizer.save_pretrained(args.out)
    print(f"wrote {args.out} ({len(tokenizer)} tokens)")


if __name__ == "__main__":
    main()
