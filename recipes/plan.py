"""`make plan [overrides]`: validate the composed config and print parameters, memory per device
and steps, without loading weights."""

import json
import sys

from lima_recipes.cli import user_errors_are_one_line
from lima_recipes.config import compose, validate


@user_errors_are_one_line
def main(argv: list[str]) -> None:
    from lima_recipes.config.fit import USABLE, host_verdict, verdicts
    from lima_recipes.config.plan import count_examples, make_plan, render_plan

    as_json = "--json" in argv
    cfg = compose([a for a in argv if a != "--json"])
    validate(cfg)
    examples, note = count_examples(cfg)
    plan = make_plan(cfg, examples, note, added_tokens=1 + len(cfg.template.extra_special_tokens) if cfg.template.eot_token else 0)
    fits = verdicts(cfg)
    host = host_verdict(cfg)
    if as_json:
        print(json.dumps({**plan.as_dict(), "verdicts": [{"device": v.device, "fits": v.fits, "needed": v.needed,
                                                          "usable": v.capacity * USABLE, "fix": v.fix} for v in fits],
                          "host": {"fits": host.fits, "needed": host.needed, "usable": host.capacity * USABLE, "fix": host.fix}}, indent=2))
    else:
        render_plan(plan, verdicts=fits, host=host)


if __name__ == "__main__":
    main(sys.argv[1:])
