"""`recwise results` / `results import` / `report`: the importer, the table, the HTML page (in Chromium too)."""

from __future__ import annotations

import json
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("plotly")

from recwise.cli import main
from recwise.report import build_report, import_results, lower_is_better, metric_order
from recwise.results import ResultRow, write_results
from recwise.store import ResultStore

MSR_MODELS = {"good": 0.78, "mid": 0.76, "bad": 0.70}  # mean test AUC; seed s adds (s - 1) * 0.01


def _msr_rows(model: str, seed: int, base: float) -> list[ResultRow]:
    auc = base + (seed - 1) * 0.01
    rows = []
    for split in ("val", "test"):
        for seg, shift in (("all", 0.0), ("scenario=0", -0.02), ("scenario=1", 0.01)):
            rows.append(ResultRow("msr", "toy", model, seed, split, seg, "auc", auc + shift))
            rows.append(ResultRow("msr", "toy", model, seed, split, seg, "logloss", 1.2 - auc - shift))
    return rows


def _grid_folder(root: Path, *, failed: bool = True) -> Path:
    """A folder laid out as the grid runner writes it: results.csv, failures.json, cells/*/seed*/cell.json."""
    rows = []
    for model, base in MSR_MODELS.items():
        for seed in range(3):
            cell_rows = _msr_rows(model, seed, base)
            rows += cell_rows
            cdir = root / "cells" / model / f"seed{seed}"
            cdir.mkdir(parents=True)
            write_results(cdir / "results.csv", cell_rows)
            (cdir / "cell.json").write_text(json.dumps({"key": f"{model}{seed}", "status": "done",
                                                        "wall_seconds": 10.0 + seed, "peak_rss_mb": 300.0 + seed,
                                                        "host": "h1"}))
    write_results(root / "results.csv", rows)
    fails = [{"key": "x", "task": "msr", "dataset": "toy", "model": "crashy", "seed": 0, "status": "failed",
              "reason": "worker died (tried 2 times)", "wall_seconds": float("nan")}] if failed else []
    (root / "failures.json").write_text(json.dumps(fails))
    return root / "results.csv"


def test_import_grid_folder_with_meta_and_failures(tmp_path: Path) -> None:
    csv = _grid_folder(tmp_path / "grid")
    store = ResultStore(tmp_path / "s.duckdb")
    res = import_results(store, csv.parent)
    assert (res.rows, res.cells, res.failures, res.skipped) == (len(MSR_MODELS) * 3 * 12, 9, 1, False)
    rec = store.query(model="mid", seed=2, split="test", segment="all", metric="auc").row(0, named=True)
    assert rec["value"] == pytest.approx(0.77)
    assert (rec["config_hash"], rec["wall_seconds"], rec["peak_rss_mb"], rec["host"]) == ("mid2", 12.0, 302.0, "h1")
    assert rec["source"].startswith("import:") and rec["git_commit"] is None
    assert store.failures().select("model", "error").rows() == [("crashy", "worker died (tried 2 times)")]
    n = store.count()
    assert import_results(store, csv).skipped and store.count() == n  # same file again: nothing added


def test_import_older_bench_folder_reads_run_json_and_error_txt(tmp_path: Path) -> None:
    root = tmp_path / "msr-toy"
    rows = _msr_rows("good", 0, 0.78)
    write_results(root / "results.csv", rows)
    (root / "cells" / "good" / "seed0").mkdir(parents=True)
    (root / "cells" / "good" / "seed0" / "run.json").write_text(json.dumps(
        {"config_hash": "abc", "version": "0.0.9", "wall_seconds": 4.5}))
    (root / "cells" / "star" / "seed1").mkdir(parents=True)
    (root / "cells" / "star" / "seed1" / "error.txt").write_text("RuntimeError: nan loss\n\nTraceback ...")
    store = ResultStore(tmp_path / "s.duckdb")
    assert import_results(store, root / "results.csv").failures == 1
    rec = store.query(split="test", segment="all", metric="auc").row(0, named=True)
    assert (rec["config_hash"], rec["version"], rec["wall_seconds"], rec["peak_rss_mb"]) == ("abc", "0.0.9", 4.5, None)
    assert store.failures().select("model", "seed", "error").rows() == [("star", 1, "RuntimeError: nan loss")]


def test_results_command_prints_mean_std_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _grid_folder(tmp_path / "grid")
    db = tmp_path / "s.duckdb"
    assert main(["results", "--store", str(db), "import", str(csv)]) == 0
    assert "108 rows added" in capsys.readouterr().out
    assert main(["results", "--store", str(db), "--metric", "auc", "--segment", "all"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[2]: ln.split() for ln in out.splitlines() if ln.startswith("msr")}
    assert set(lines) == set(MSR_MODELS)
    # seeds give base-0.01, base, base+0.01: mean = base, sample std = 0.01, n = 3
    assert lines["mid"][-3:] == ["0.7600", "0.0100", "3"] and lines["bad"][-3:] == ["0.7000", "0.0100", "3"]
    assert "1 failed cell" in out and "crashy" in out
    assert main(["results", "--store", str(db), "--by", "model", "--split", "any", "--model", "good"]) == 0
    values = [r.value for s in range(3) for r in _msr_rows("good", s, MSR_MODELS["good"])]
    expect = ["good", f"{statistics.mean(values):.4f}", f"{statistics.stdev(values):.4f}", str(len(values))]
    assert [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("good")] == [expect]
    assert main(["results", "--store", str(db), "--by", "modell"]) == 2
    assert "cannot group by 'modell'" in capsys.readouterr().err


def _two_provenance_store(path: Path) -> ResultStore:
    """Model 'a' on 3 seeds at 1 thread in the deterministic mode (ray), 'b' on 2 seeds at 2 threads (local)."""
    store = ResultStore(path)
    for seed in range(3):
        store.append(_msr_rows("a", seed, 0.78), {"threads": 1, "executor": "ray", "deterministic": True,
                                                 "git_commit": "1" * 40, "git_dirty": False})
    for seed in range(2):
        store.append(_msr_rows("b", seed, 0.70), {"threads": 2, "executor": "local", "deterministic": False,
                                                 "git_commit": "2" * 40, "git_dirty": True})
    return store


def test_results_command_shows_provenance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.duckdb"
    _two_provenance_store(db)
    assert main(["results", "--store", str(db), "--metric", "auc", "--segment", "all"]) == 0
    out = capsys.readouterr().out
    assert "provenance of these rows (2 distinct):" in out
    lines = [ln.split() for ln in out.splitlines() if ln.startswith("  1111") or ln.startswith("  2222")]
    # git commit, threads, executor, deterministic, rows, runs: one auc/all row per seed
    assert lines == [["1111111111", "1", "ray", "yes", "3", "3"], ["2222222222+dirty", "2", "local", "no", "2", "2"]]
    assert main(["results", "--store", str(db), "--metric", "auc", "--segment", "all", "--model", "b"]) == 0
    assert "(1 distinct)" in capsys.readouterr().out  # only the shown rows' provenance
    assert main(["results", "--store", str(db), "--metric", "auc", "--segment", "all",
                 "--by", "model,threads,deterministic,executor", "--no-provenance"]) == 0
    out = capsys.readouterr().out
    assert "provenance" not in out
    rows = [ln.split() for ln in out.splitlines() if ln[:1] in ("a", "b")]
    assert [r[:4] for r in rows] == [["a", "1", "True", "ray"], ["b", "2", "False", "local"]]
    assert main(["results", "--store", str(db), "--by", "thread"]) == 2
    assert "threads" in capsys.readouterr().err


def test_import_reads_provenance_from_run_json(tmp_path: Path) -> None:
    from recwise.provenance import provenance

    root = tmp_path / "run"
    write_results(root / "results.csv", _msr_rows("good", 0, 0.78))
    prov = provenance(executor="torchrun", deterministic=True, threads=1)
    (root / "run.json").write_text(json.dumps({"config_hash": "abc", "version": "0.1.0", "provenance": prov}))
    store = ResultStore(tmp_path / "s.duckdb")
    import_results(store, root)
    rec = store.query(split="test", segment="all", metric="auc").row(0, named=True)
    assert (rec["config_hash"], rec["threads"], rec["executor"], rec["deterministic"]) == ("abc", 1, "torchrun", True)
    assert rec["git_commit"] == prov["git_commit"] and json.loads(rec["packages"])["torch"] == prov["packages"]["torch"]
    # a grid folder without provenance: the executor from cell.json, the rest unknown (not this process's)
    csv = _grid_folder(tmp_path / "grid")
    for cell in (tmp_path / "grid" / "cells").glob("*/seed*/cell.json"):
        cell.write_text(json.dumps({**json.loads(cell.read_text()), "executor": "ray"}))
    import_results(store, csv)
    rec = store.query(model="mid", seed=0, split="test", segment="all", metric="auc").row(0, named=True)
    assert (rec["executor"], rec["threads"], rec["deterministic"], rec["packages"], rec["git_dirty"]) == \
        ("ray", None, None, None, None)


def test_page_shows_provenance(tmp_path: Path) -> None:
    store = _two_provenance_store(tmp_path / "s.duckdb")
    page = build_report(store, tmp_path / "out").read_text()
    combos = [[t for t, _ in row] for row in _table(page, "provenance-combos")]
    # test split: 6 rows (3 segments x 2 metrics) per seed; most rows first
    assert [r[:4] + r[-2:] for r in combos] == [["1111111111", "1", "ray", "yes", "18", "3"],
                                                 ["2222222222 (dirty)", "2", "local", "no", "12", "2"]]
    assert "torch " in combos[0][5]  # the library versions of this process
    per_model = {row[2][0]: [t for t, _ in row] for row in _table(page, "provenance")}
    assert per_model["a"][7:10] == ["1", "ray", "yes"] and per_model["b"][7:10] == ["2", "local", "no"]


def test_many_backbone_method_curves_get_one_chart_per_backbone(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.duckdb")
    for backbone in ("mlp", "dcn"):
        for i in range(6):
            store.append([ResultRow("selection", "toy", f"{backbone}+m{i}", 0, "test", f"k={k}", "auc", 0.6 + i / 100)
                          for k in (2, 4)])
    page = build_report(store, tmp_path / "rep").read_text()
    assert re.findall(r"<h3>([^<]*)</h3>", page) == ["auc vs k (features kept) (higher is better): dcn",
                                                      "auc vs k (features kept) (higher is better): mlp"]
    assert len(_table(page, "leaderboard")) == 12  # only k= segments: one column per (metric, k)


def test_metric_direction_and_order() -> None:
    assert lower_is_better("logloss") and lower_is_better("rmse") and not lower_is_better("auc")
    assert not lower_is_better("ndcg@10")
    assert metric_order(["logloss", "hit@20", "ndcg@10", "hit@5", "auc"]) == ["auc", "ndcg@10", "logloss", "hit@5",
                                                                                "hit@20"]


class _Cells(HTMLParser):
    """Rows of one table (by class) as lists of (text, is_bold)."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls, self.inside, self.rows, self.in_body = cls, False, [], False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.inside = a.get("class") == self.cls
        elif self.inside and tag == "tbody":
            self.in_body = True
        elif self.inside and self.in_body and tag == "tr":
            self.rows.append([])
        elif self.inside and self.in_body and tag == "td":
            self.rows[-1].append(["", "best" in (a.get("class") or "")])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = self.in_body = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.in_body and self.rows and self.rows[-1]:
            self.rows[-1][-1][0] += data


def _table(page: str, cls: str) -> list[list[tuple[str, bool]]]:
    p = _Cells(cls)
    p.feed(page)
    return [[(t, b) for t, b in row] for row in p.rows]


def _three_task_store(tmp_path: Path) -> ResultStore:
    """msr with scenarios, selection with k=<k> segments, sequential with len=<group> segments, one failure."""
    store = ResultStore(tmp_path / "s.duckdb")
    _grid_folder(tmp_path / "grid", failed=False)
    import_results(store, tmp_path / "grid")
    for method, slope in (("gate", 0.004), ("random", 0.001)):
        for seed in range(2):
            rows = [ResultRow("selection", "toy", method, seed, "test", f"k={k}", "auc", 0.6 + slope * k)
                    for k in (2, 4, 8, 16)]
            rows.append(ResultRow("selection", "toy", method, seed, "test", "aukc", "auc", 0.6 + slope * 8))
            store.append(rows, {"config_hash": f"{method}{seed}", "wall_seconds": 3.0})
    for model, base in (("sasrec", 0.30), ("gru4rec", 0.25)):
        rows = [ResultRow("seq", "toy", model, 0, "test", seg, "ndcg@10", base + d)
                for seg, d in (("all", 0.0), ("len=0-5", -0.05), ("len=5-20", 0.0), ("len=20-inf", 0.04))]
        rows += [ResultRow("seq", "toy", model, 0, "test", "all", "hit@10", base + 0.2)]
        store.append(rows, {"wall_seconds": 20.0})
    store.append_failure("msr", "toy", "crashy", 1, "MemoryError: out of memory <oops>")
    return store


def test_page_has_leaderboards_plots_and_failures(tmp_path: Path) -> None:
    store = _three_task_store(tmp_path)
    page = build_report(store, tmp_path / "out").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # self-contained: nothing to fetch
    assert "Plotly.newPlot" in page
    for sec in ("msr-toy", "selection-toy", "seq-toy", "failures", "provenance"):
        assert f"id='{sec}'" in page
    boards = _table(page, "leaderboard")
    msr = boards[:3]  # sections in (task, dataset) order: msr, selection, seq
    assert [row[0][0] for row in msr] == ["good", "mid", "bad"]  # sorted by mean test AUC
    assert msr[0][2] == ("0.7800 ± 0.0100", True) and not msr[1][2][1]  # auc column: best in bold
    assert msr[0][3][1] and msr[0][3][0].startswith("0.4200")  # logloss: lower is better, bold too
    assert [c[0] for c in msr[1][:2]] == ["mid", "3"]
    selection = boards[3:5]  # no 'all' segment: the summary segment (aukc) is the leaderboard
    assert [row[0][0] for row in selection] == ["gate", "random"]
    assert [c[0] for c in selection[0][2:4]] == ["0.6320 ± 0.0000", "3.0"]  # auc on aukc, wall s
    assert "auc aukc" in page
    seq = boards[5:]
    assert [row[0][0] for row in seq] == ["sasrec", "gru4rec"] and seq[0][2] == ("0.3000 ± 0.0000", True)
    # figures: msr auc+logloss per scenario, selection auc vs k, seq ndcg@10 vs length
    assert re.findall(r"<h3>([^<]*)</h3>", page) == [
        "auc per scenario (higher is better)", "logloss per scenario (lower is better)",
        "auc vs k (features kept) (higher is better)", "ndcg@10 vs history length (items) (higher is better)"]
    fails = _table(page, "failures")
    assert [c[0] for c in fails[0][:5]] == ["msr", "toy", "crashy", "1", "MemoryError: out of memory <oops>"]
    assert "<oops>" not in page  # escaped


def test_report_command_from_csv_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _grid_folder(tmp_path / "grid")
    assert main(["report", "--results", str(csv), "--out", str(tmp_path / "rep"), "--title", "toy grid"]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<title>toy grid</title>" in page and len(_table(page, "leaderboard")) == 3
    assert "worker died" in page
    assert main(["report", "--store", str(tmp_path / "missing.duckdb"), "--out", str(tmp_path / "x")]) == 2
    assert "no results store" in capsys.readouterr().err


CHROMIUM = Path("/usr/bin/chromium")


def test_page_in_headless_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"optional: {CHROMIUM} not found: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    store = _three_task_store(tmp_path)
    page_path = build_report(store, tmp_path / "out")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            fetched: list[str] = []  # the page must not need the network: refuse and record any request

            def refuse(route) -> None:  # noqa: ANN001
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    fetched.append(route.request.url)
                    route.abort()

            page.route("**/*", refuse)
            page.goto(page_path.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4",
                                   timeout=30_000)
            rows = page.locator("#msr-toy table.leaderboard tbody tr")
            assert rows.count() == 3 and rows.first.locator("td").first.inner_text() == "good"
            assert page.locator("#seq-toy table.leaderboard tbody tr").count() == 2
            assert page.locator("table.failures tbody tr").count() == 1
            # four figures drawn; the k curves have one trace per selection method
            assert page.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 4
            assert page.evaluate("document.getElementById('fig3').data.length") == 2
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == [] and fetched == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def _toy_cell(cell, out_dir: Path, shared) -> list[ResultRow]:  # noqa: ANN001
    """A grid cell that 'trains' instantly: AUC from the options; the model named 'broken' raises."""
    if cell.model == "broken" and not (shared or {}).get("fixed"):
        raise RuntimeError("diverged: loss is nan")
    auc = cell.options["auc"] + cell.seed * 0.002
    return [ResultRow(cell.task, cell.dataset, cell.model, cell.seed, "test", seg, "auc", auc + d)
            for seg, d in (("all", 0.0), ("scenario=0", -0.01), ("scenario=1", 0.01))]


def test_grid_runner_appends_to_the_store_and_the_report_shows_failures(tmp_path: Path) -> None:
    import recwise.bench as bench
    cells = [bench.Cell("msr", "toy", m, s, options={"auc": a}) for m, a in (("ok", 0.7), ("broken", 0.6))
             for s in range(2)]
    db = tmp_path / "s.duckdb"
    res = bench.run_grid(cells, _toy_cell, tmp_path / "grid", store=db, quiet=True)
    assert len(res.failed) == 2
    store = ResultStore(db)
    assert store.summary(segment="all")["count"].to_list() == [2]
    assert sorted(store.failures()["seed"].to_list()) == [0, 1]
    rec = store.query(model="ok", seed=1, segment="all").row(0, named=True)
    assert rec["value"] == pytest.approx(0.702) and rec["config_hash"] == cells[1].key and rec["wall_seconds"] >= 0
    page = build_report(store, tmp_path / "rep").read_text()
    fails = _table(page, "failures")
    assert [(r[2][0], r[3][0], r[4][0]) for r in fails] == [("broken", "0", "RuntimeError: diverged: loss is nan"),
                                                            ("broken", "1", "RuntimeError: diverged: loss is nan")]
    # the re-run runs only the failed cells; their success clears the failures
    res = bench.run_grid(cells, _toy_cell, tmp_path / "grid", shared={"fixed": True}, store=db, quiet=True)
    assert (res.ran, res.reused, len(res.failed)) == (2, 2, 0)
    assert store.failures().height == 0 and store.summary(segment="all")["count"].to_list() == [2, 2]
    assert "No failed cells" in build_report(store, tmp_path / "rep").read_text()
