"""`minitorch-cl bench models`: the table's columns, ratios and geomean row through the CLI, on the
smoke net at --quick (the figures themselves are never checked: benchmarks are not timed tests)."""
import pytest
from click.testing import CliRunner

from minitorch_cl.bench import models as bench_models
from minitorch_cl.cli import main

COLUMNS = ["model", "input", "eval img/s", "PyTorch eval img/s", "eval ratio", "train img/s",
           "PyTorch train img/s", "train ratio", "peak MiB", "PyTorch peak MiB"]


def _table(output):
    """{first cell: {column: cell}} of the markdown table in the output."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return head, {cells[0]: dict(zip(head, cells)) for cells in
                  ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}


@pytest.fixture(scope="module")
def result(dev):
    pytest.importorskip("torch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_models, "PAUSE", 0.0)
        mp.setenv(bench_models.THREADS_ENV, "1")
        mp.setitem(bench_models.MODELS, "future_net", bench_models.Model(bench_models._tiny, 32, "future_net"))
        out = CliRunner().invoke(main, ["bench", "models", "--quick", "--device", dev.spec,
                                        "--models", "tiny,future_net,bogus"])
    assert out.exit_code == 0, out.output
    return out.output


def test_table_has_the_columns_ratios_and_geomean(result):
    head, rows = _table(result)
    assert head == COLUMNS
    assert list(rows) == ["tiny", "geomean (1)"]
    tiny = rows["tiny"]
    assert tiny["input"] == "32x32"
    for col in COLUMNS[2:]:
        assert float(tiny[col]) > 0, (col, tiny)
    # the time ratio is ours over PyTorch's: the inverse of the images/s ratio (to the table's 3 digits)
    for phase in ("eval", "train"):
        want = float(tiny[f"PyTorch {phase} img/s"]) / float(tiny[f"{phase} img/s"])
        assert float(tiny[f"{phase} ratio"]) == pytest.approx(want, rel=0.02)
    geo = rows["geomean (1)"]
    assert geo["eval ratio"] == tiny["eval ratio"] and geo["train ratio"] == tiny["train ratio"]
    assert {geo[c] for c in COLUMNS if "ratio" not in c and c != "model"} == {"-"}
    # our peak holds at least the two input batches (2 x 3 x 32 x 32 float32 each)
    assert float(tiny["peak MiB"]) >= 2 * 2 * 3 * 32 * 32 * 4 / 2 ** 20


def test_models_it_cannot_run_are_skipped_with_a_note(result):
    assert "skipped future_net: minitorch_cl.vision.models has no future_net yet" in result
    assert "skipped bogus: unknown model" in result
    assert "tiny: measured in " in result  # progress, one line per model
    assert "CPU: 1 thread\n" in result  # $MINITORCH_CL_TORCH_THREADS
    assert "/proc/self/clear_refs" in result  # the footnote explains the memory method


def test_geomean_is_the_geometric_mean():
    assert bench_models._geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert bench_models._geomean([0.5, 2.0, 1.0]) == pytest.approx(1.0)


def test_models_option_belongs_to_bench_models():
    out = CliRunner().invoke(main, ["bench", "gemm", "--models", "resnet18"])
    assert out.exit_code == 2 and "--models applies to `bench models` only" in out.output


def test_default_list_is_the_zoo_and_the_cifar_resnet():
    assert set(bench_models.DEFAULT) <= set(bench_models.MODELS) and "tiny" not in bench_models.DEFAULT
    assert bench_models.DEFAULT[-1] == "cifar_resnet18" and len(bench_models.DEFAULT) == 11
