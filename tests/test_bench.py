"""The benchmark script's plumbing (benches/run.py) on tiny sizes: it runs, writes valid
JSON with every group, skips missing optional backends with a note, and turns a bad flag
into one line. Nothing here asserts a speed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "benches" / "run.py"


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_run", None)


def tiny(tmp_path: Path, *extra: str) -> list[str]:
    """Flags for a run of a few seconds, with both optional backends absent."""
    return [
        "--quick",
        "--sentences", "24",
        "--queries", "3",
        "--sizes", "20,40",
        "--store-batch", "8",
        "--out", str(tmp_path / "out"),
        "--workdir", str(tmp_path / "work"),
        "--fp32-model", str(tmp_path / "no-such-model.onnx"),
        "--st-python", str(tmp_path / "no-such-python"),
        "--st-model", str(tmp_path),
        *extra,
    ]  # fmt: skip


def written(tmp_path: Path) -> dict[str, Any]:
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 1
    assert files[0].with_suffix(".md").is_file()
    return json.loads(files[0].read_text())


def test_tiny_run_writes_every_key_and_skips_missing_backends(
    bench: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(tiny(tmp_path, "--skip", "startup", "memory")) == 0
    results = written(tmp_path)
    for key in ("schema", "date", "command", "machine", "settings", "groups", "notes",
                "load_average_before", "load_average_after", "model"):  # fmt: skip
        assert key in results, key
    assert set(results["groups"]) == set(bench.GROUPS)

    embedding = results["groups"]["embedding"]
    assert embedding["status"] == "ok"
    assert embedding["rows"]["memento int8"]["sentences_per_s"] > 0
    serial = embedding["rows"]["memento int8, one call per text"]
    assert serial["sentences_per_s"] > 0 and serial["identical_vectors_to_memento_int8"]
    assert "not found" in embedding["rows"]["fp32 ONNX"]["skipped"]
    assert "not importable" in embedding["rows"]["sentence-transformers"]["skipped"]
    assert embedding["headline_memento_vs_st"] is None
    assert any("sentence-transformers skipped" in n for n in results["notes"])

    scale = results["groups"]["scale"]
    assert scale["status"] == "ok"
    assert [step["memories"] for step in scale["steps"]] == [20, 40]
    for step in scale["steps"]:
        assert step["recall_ms_p50"] > 0 and step["search_ms_p95"] > 0
        assert step["recall_scan_ms_p50"] > 0  # a first recall's path, timed beside it
        assert step["store_fact_ms_p50"] > 0 and step["store_event_ms_p50"] > 0
        assert step["store_many"]["items"] == 8 and step["store_many"]["events_per_s"] > 0
        assert step["synthetic_fill"]["rows"] > 0

    assert results["groups"]["startup"] == {"status": "skipped", "reason": "--skip"}
    assert "--quality" in results["groups"]["quality"]["reason"]

    table = capsys.readouterr().out
    assert "| memento int8 |" in table and "## Store and recall at scale" in table


def test_startup_and_memory_skip_without_cli_or_probe(
    bench: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `memento` to run
    monkeypatch.setitem(sys.modules, "mcp_probe", None)  # import fails
    flags = tiny(tmp_path, "--skip", "embedding", "scale", "quality")
    assert bench.main(flags) == 0
    groups = written(tmp_path)["groups"]
    for name in ("startup", "memory"):
        assert groups[name]["status"] == "ok"
        for row in groups[name]["rows"].values():
            assert row["skipped"], row
    assert "not on PATH" in groups["startup"]["rows"]["memento --help"]["skipped"]
    assert "mcp_probe" in groups["startup"]["rows"]["MCP spawn -> initialize"]["skipped"]


def test_chart_is_skipped_with_a_note_without_matplotlib(
    bench: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    results = {"groups": {"scale": {"status": "ok"}, "embedding": {"status": "ok"}}}
    note = bench.chart(results, tmp_path / "chart.png")
    assert note and "matplotlib" in note
    assert not (tmp_path / "chart.png").exists()


def test_quick_sizes_and_quality_opt_in(bench: Any) -> None:
    parse = bench.build_parser().parse_args
    quick = bench.Settings.from_args(parse(["--quick"]))
    assert quick.sizes == (1_000, 10_000) and not quick.quality
    assert bench.Settings.from_args(parse(["--quick", "--quality"])).quality
    full = bench.Settings.from_args(parse([]))
    assert full.sizes == (1_000, 10_000, 100_000) and full.quality and full.sentences == 2_000


@pytest.mark.parametrize(
    "flags", [["--bogus"], ["--skip", "nothing"], ["--sizes", "ten"], ["--queries", "0"]]
)
def test_bad_flag_is_one_line_and_nonzero(flags: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN_PY), *flags], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("run.py: error:")
