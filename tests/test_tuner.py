"""The GEMM autotuner: tiny searches that store a record, its use by a new process, and its failures."""
import json
import os
import subprocess
import sys
import warnings

import pytest
from click.testing import CliRunner

import minitorch_cl as mt
from minitorch_cl import cli, tuned_profile, tuner

SHAPES = [tuner.Shape("odd", 37, 70, 33), tuner.Shape("conv", 16, 100, 27, batch=3, shared_a=True),
          tuner.Shape("linear", 9, 40, 65, trans_b=True)]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "minitorch_cl"


def _candidates(dev):
    """Three candidates of the device's entry, none of them its built-in default."""
    entry = tuner.search_space(dev).entry
    if entry == "gemm_cpu_block":
        lanes = dev.default_profile().gemm_cpu_block["LANES"]
        return entry, [dict(MR=4, NV=1, LANES=lanes), dict(MR=3, NV=1, LANES=lanes), dict(MR=5, NV=1, LANES=lanes)]
    return entry, [dict(TM=32, TN=32, TK=16, WM=4, WN=4), dict(TM=32, TN=32, TK=8, WM=4, WN=4),
                   dict(TM=32, TN=32, TK=16, WM=2, WN=2)]


def _fresh(dev):
    """The same OpenCL device as a new Device object, whose profile is built anew (on first use)."""
    return mt.Device(dev.cl_device, dev.platform_index, dev.device_index, dev.ordinal)



def test_tune_stores_a_record_that_a_new_process_applies(dev, cache):
    entry, cands = _candidates(dev)
    before = dict(getattr(dev.profile, entry))
    record = tuner.tune(dev, budget=600, searches=[tuner.Search(entry, cands, SHAPES)], repeats=1, log=None)
    assert getattr(dev.profile, entry) == before  # the running profile is left as it was
    winner = record["entries"][entry]
    assert winner in cands
    assert os.listdir(cache) == ["tuned.json"]  # written by rename, no temporary left
    stored = json.loads((cache / "tuned.json").read_text())[dev.tuning_key]
    assert stored["entries"] == {entry: winner} and tuned_profile.is_current(stored)
    code = ("import json, minitorch_cl as mt\n"
            "d = mt.device()\n"
            f"print(json.dumps([d.tuned, d.profile.{entry}]))\n")
    env = dict(os.environ, MINITORCH_CL_DEVICE=dev.spec)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tuned, applied = json.loads(out.stdout.splitlines()[-1])
    assert tuned == {entry: winner} and applied == winner


def test_a_wrong_candidate_is_never_chosen(dev, monkeypatch):
    entry, cands = _candidates(dev)
    bad = cands[1]
    product, timed = tuner._product, []

    def wrong_for_bad(d, case):
        outs = product(d, case)
        return [o + 1.0 for o in outs] if getattr(d.profile, entry) == bad else outs

    def bad_looks_fastest(d, case, repeats):
        timed.append(dict(getattr(d.profile, entry)))
        return 1e-9 if getattr(d.profile, entry) == bad else 1.0

    monkeypatch.setattr(tuner, "_product", wrong_for_bad)
    monkeypatch.setattr(tuner, "_time_shape", bad_looks_fastest)
    record = tuner.tune(dev, budget=600, searches=[tuner.Search(entry, cands, SHAPES)], repeats=1, log=None)
    assert record["entries"][entry] != bad
    assert bad not in timed and len(timed) >= 2 * len(SHAPES)
    status = {json.dumps(c["config"], sort_keys=True): c["status"] for c in record["candidates"]}
    assert status[json.dumps(bad, sort_keys=True)].startswith("wrong result")


def test_a_corrupt_record_is_ignored_with_a_warning(dev, cache):
    cache.mkdir()
    (cache / "tuned.json").write_text('{"half a record": ')
    fresh = _fresh(dev)
    with pytest.warns(RuntimeWarning, match="corrupt tuning cache"):
        prof = fresh.profile
    assert prof == fresh.default_profile() and fresh.tuned == {}


def test_a_stale_or_foreign_record_is_ignored(dev, cache):
    entry, cands = _candidates(dev)
    tuned_profile.store(dev.tuning_key, {entry: cands[0]})
    tuned_profile.store("another platform | 1.0 | some device | 1.0", {entry: cands[1]})
    assert _fresh(dev).tuned == {entry: cands[0]}
    records = json.loads((cache / "tuned.json").read_text())
    records[dev.tuning_key]["kernels"] = "0" * 16  # tuned on other kernels
    (cache / "tuned.json").write_text(json.dumps(records))
    fresh = _fresh(dev)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fresh.profile == fresh.default_profile() and fresh.tuned == {}
    assert "stale" in "\n".join(tuner.show())


def test_a_device_never_tuned_runs_the_defaults(dev, cache):
    fresh = _fresh(dev)
    assert fresh.profile == fresh.default_profile() and fresh.tuned == {}
    assert not cache.exists()


def test_tune_show_prints_what_is_stored(dev):
    entry, cands = _candidates(dev)
    tuned_profile.store(dev.tuning_key, {entry: cands[2]}, tuned_at="then", speedup=1.25, shapes=[])
    out = CliRunner().invoke(cli.main, ["tune", "--show"])
    assert out.exit_code == 0, out.output
    assert dev.tuning_key in out.output and "1.25x" in out.output
    assert " ".join(f"{k}={v}" for k, v in sorted(cands[2].items())) in out.output


def test_attention_rows_are_checked_and_tuned(dev):
    search = tuner.attention_space(dev)
    assert search.entry == "attention_bq" and search.candidates[0] == dev.default_profile().attention_bq
    # both head dims in one register-array bucket (DMAX 16, which test_attention builds for the default
    # too): each candidate is one build, and 13 < 16 keeps the head-dim tail in play
    shapes = (tuner.AttentionShape("tiny", 1, 2, 33, 16), tuner.AttentionShape("causal", 1, 1, 40, 13, causal=True))
    cands = search.candidates[:3]
    record = tuner.tune(dev, budget=600, searches=[tuner.Search("attention_bq", cands, shapes)], repeats=1,
                        rounds=1, store=False, log=None)
    assert record["entries"]["attention_bq"] in cands
    assert [c["status"] for c in record["candidates"]] == ["ok"] * len(cands)
    assert dev.profile.attention_bq == dev.default_profile().attention_bq


def test_bench_gemm_times_default_and_tuned_side_by_side(dev, cache):
    from minitorch_cl.bench import gemm as bench_gemm
    entry, cands = _candidates(dev)
    tuned_profile.store(dev.tuning_key, {entry: cands[0]})
    fresh = _fresh(dev)
    assert getattr(fresh.profile, entry) == cands[0]
    row, = bench_gemm.run(fresh, sizes=(65,), repeats=1)
    assert row["default GFLOP/s"] > 0 and row["tuned GFLOP/s"] > 0 and row["max rel err"] < 1e-5
    assert getattr(fresh.profile, entry) == cands[0]  # the default was timed, then put back
    (cache / "tuned.json").unlink()
    plain, = bench_gemm.run(_fresh(dev), sizes=(65,), repeats=1)  # never tuned: one column
    assert "minitorch_cl GFLOP/s" in plain and "tuned GFLOP/s" not in plain
    assert plain["streamed GFLOP/s"] > 0 and plain["streamed ratio"] > 0
