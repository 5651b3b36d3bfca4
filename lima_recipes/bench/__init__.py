"""`make bench`: figures measured in one run, reported as ratios against baselines of the same run."""
