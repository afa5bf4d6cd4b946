"""bench's paired timing: ours and theirs alternate call by call, so that a change in the machine's
load reaches both medians, and the ratio is theirs."""
from minitorch_cl import bench


def test_paired_times_alternate_and_take_the_ratio_of_the_medians(monkeypatch):
    calls, durations = [], iter([9, 9, 2, 1, 30, 10, 4, 2, 6, 6])  # warm-up pair, then 4 pairs
    monkeypatch.setattr(bench, "_timed", lambda fn, sync: (fn(), next(durations))[1])
    monkeypatch.setattr(bench, "GAP", 0)
    ours, theirs = (lambda: calls.append("ours")), (lambda: calls.append("theirs"))
    t_ours, t_theirs, ratio = bench.paired_times(ours, theirs, repeats=4, warmup=1)
    assert calls == ["ours", "theirs"] * 5
    assert (t_ours, t_theirs) == (5.0, 4.0)  # medians of 2, 30, 4, 6 and of 1, 10, 2, 6
    assert ratio == 1.25


def test_paired_times_without_theirs_is_our_median(monkeypatch):
    durations = iter([7, 3, 1, 2])
    monkeypatch.setattr(bench, "_timed", lambda fn, sync: next(durations))
    assert bench.paired_times(lambda: None, None, repeats=3, warmup=1) == (2, None, None)
