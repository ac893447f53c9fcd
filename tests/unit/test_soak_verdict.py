"""The memory soak's verdict (``bench/soak.py``), from samples made up here: no stack, no timing."""

from __future__ import annotations

from bench.soak import LIMIT_MIB, PLATEAU_MIB, STANDIN, Sample, SoakResult, section, verdict


def run(*worker_rss: float, standin: float = 40.0) -> SoakResult:
    """A soak whose one worker process had these RSS figures, sampled at idle then every 1,000 events."""
    result = SoakResult(events=1_000 * (len(worker_rss) - 1))
    for i, rss in enumerate(worker_rss):
        figures = {"worker CLI": 26.0, "worker process 1": rss, STANDIN: standin + i}
        result.samples.append(Sample(events=1_000 * i, seconds=float(i), rss=figures, documents=5 * 1_000 * i))
    result.seconds = float(len(worker_rss))
    return result


def test_a_plateau_under_the_limit_passes() -> None:
    line = verdict(run(58, 61, 62, 63, 63.5))
    assert line.startswith(f"Verdict: plateau, under {LIMIT_MIB:.0f} MiB")
    assert "worker process 1 +1.5 MiB over the last half, peak 64 MiB" in line
    assert "worker CLI" not in line  # it runs no actor: not held to the budget


def test_growth_over_the_last_half_is_not_a_plateau() -> None:
    assert "NOT a plateau" in verdict(run(58, 60, 62, 62 + PLATEAU_MIB, 63 + 2 * PLATEAU_MIB))


def test_a_peak_over_the_limit_fails_even_if_flat() -> None:
    assert "NOT a plateau" in verdict(run(58, LIMIT_MIB + 1, LIMIT_MIB + 1, LIMIT_MIB + 1))


def test_a_run_that_stopped_early_has_no_verdict() -> None:
    stopped = run(58, 60, 61)
    stopped.problem = "soak: the emails queue was not drained after 2,000 events"
    assert verdict(stopped) == f"Verdict: no verdict ({stopped.problem})."


def test_the_section_tables_every_sample_and_the_standins_growth() -> None:
    lines = section(run(58, 61, 62))
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 1 + 3  # the header, then idle and two batches
    assert rows[1].startswith("| 0 (idle) |")
    assert any("its RSS moved +1.0 MiB over the last half" in line for line in lines)
    assert lines[-1].startswith("Verdict:")
