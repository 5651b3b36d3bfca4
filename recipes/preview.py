"""`make preview [overrides]`: render examples with every token coloured by role (trained or
masked), then the token-length distribution and how many examples the max length cuts."""

import sys

from lima_recipes.cli import user_errors_are_one_line
from lima_recipes.config import compose, validate


@user_errors_are_one_line
def main(argv: list[str]) -> None:
    from lima_recipes.data.dataset import load_or_tokenize
    from lima_recipes.data.preview import render_preview
    from lima_recipes.data.sources import check_available, train_source
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import load_tokenizer

    cfg = compose(argv)
    validate(cfg)
    source = train_source(cfg.data)
    check_available(source)
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    tokenized, _ = load_or_tokenize(source, tokenizer, template, cfg.data)
    render_preview(tokenized, tokenizer, cfg.data.max_length, cfg.preview.num_examples, cfg.preview.max_chars)


if __name__ == "__main__":
    main(sys.argv[1:])
