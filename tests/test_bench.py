"""`make bench` code paths run and report what they claim (figures only; no timing is asserted)."""

from __future__ import annotations


def test_curation_bench_reports_throughput_and_memory_at_both_sizes():
    from lima_recipes.bench.curation import bench_curation

    result = bench_curation(megabytes=0.3, scale=2, repeats=1)
    assert set(result) == {"1x", "2x", "peak_memory_ratio", "input_ratio"}
    assert 1.8 < result["input_ratio"] < 2.2
    for size in ("1x", "2x"):
        assert result[size]["mb_per_s"]["median"] > 0 and result[size]["peak_rss_mb"]["median"] > 0
        assert result[size]["candidates"] > 0
