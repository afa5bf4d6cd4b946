"""The benches' peak-memory figures measure what a step allocates (not timings: benches are not tests)."""
import sys

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.bench import our_step_peak_mib, torch_step_peak_rss_mib


def test_our_peak_is_what_the_step_holds_at_once(dev):
    keep = mt.zeros(1 << 18, device=dev)  # in use before the step: not counted

    def step():
        a = mt.zeros(1 << 20, device=dev)  # 4 MiB
        b = a + 1.0                        # 4 MiB more while a is alive
        del a
        return (b * 2.0).sum()             # b and its product: 8 MiB again, never 12

    peak = our_step_peak_mib(dev, step)
    assert 8.0 <= peak < 8.1, peak
    assert keep.shape == (1 << 18,)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_torch_peak_counts_a_step_that_reuses_freed_memory():
    torch = pytest.importorskip("torch")

    def step():
        x = torch.ones(16 << 20)  # 64 MiB, freed at the end of each call
        return float(x.sum())

    peak = torch_step_peak_rss_mib(step)  # the warm-up's pages were handed back: the step is seen again
    assert peak is not None and 60 <= peak < 200, peak
    assert np.isfinite(step())
