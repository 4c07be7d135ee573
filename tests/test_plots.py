"""`dvc plots show`: every model on three charts, drawn without network access."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

import plots_page
from imdb_rnn.layout import Reports, tuned_name

CHARTS = ("Validation accuracy per epoch, every model", "ROC on the test split, every model",
          "Test accuracy per model (mean over training seeds, 95% interval)")


def top_level_plots() -> dict[str, dict | None]:
    entries = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    return dict(next(iter(e.items())) if isinstance(e, dict) else (e, None) for e in entries)


def test_the_charts_hold_every_model_and_no_stage_adds_plots_of_its_own():
    from imdb_rnn.evaluation.reference import REFERENCE_MODELS

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    trained = [*params["train"]["models"], *map(tuned_name, params["tune"]["studies"])]
    layout, plots = Reports(), top_level_plots()
    assert list(plots)[:3] == list(CHARTS)
    learning, roc, accuracy = (plots[name] for name in CHARTS)
    assert learning["y"] == {str(layout.history(m)): "val_accuracy" for m in trained}
    assert roc["y"] == {str(layout.roc(m)): "tpr" for m in [*trained, *REFERENCE_MODELS]}
    assert accuracy["y"] == {"reports/leaderboard.csv": "model"}
    for chart in (learning, roc, accuracy):
        assert (ROOT / ".dvc" / "plots" / f"{chart['template']}.json").is_file()
    # the page stays readable: the per-model files are outputs, drawn only on these charts
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert [name for name, body in stages.items() if "plots" in body.get("do", body)] == []


def test_the_offline_page_is_the_pinned_packages_and_dvc_uses_it():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    template = config["plots"]["html_template"]
    assert not Path(template).is_absolute()
    assert (ROOT / ".dvc" / template).resolve() == plots_page.PAGE.resolve()
    page = plots_page.PAGE.read_text(encoding="utf-8")
    assert page == plots_page.render(), "run python tools/plots_page.py"
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN tags stay out
    assert not re.search(r"<script[^>]*\ssrc=", page)


def workspace(tmp_path: Path) -> Path:
    """A scratch DVC project with this one's dvc.yaml, params.yaml, .dvc/config, .dvc/plots and
    the committed report files the plots read (no data, models or cache)."""
    root = tmp_path / "workspace"
    root.mkdir()
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    for name in ("dvc.yaml", "params.yaml", ".dvc/config"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots")
    for pattern in ("reports/train/*/history.csv", "reports/evaluate/*/roc.csv",
                    "reports/leaderboard.csv", "reports/figures/*.png",
                    "reports/search/search_progress.png"):
        for source in ROOT.glob(pattern):
            target = root / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return root


def test_dvc_plots_show_draws_every_plot_without_network(tmp_path):
    if plots_page.browser() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium; .ci/run installs it)")
    root = workspace(tmp_path)
    images = len(list(root.glob("reports/figures/*.png"))) + 1  # and the search progress
    assert images > 1, "no committed reports/figures/*.png to draw"
    page = plots_page.plots_show(root, tmp_path / "plots")  # plain: .dvc/config
    html = page.read_text(encoding="utf-8")
    plots = html.count("vegaEmbed(")
    assert plots == len(CHARTS)
    assert "cdn.jsdelivr" not in html and not re.search(r"<script[^>]*\ssrc=", html)
    dom = plots_page.open_offline(page)
    assert plots_page.drawn(dom) >= plots, dom[-3000:]
    assert dom.count('<img src="static/') == images  # every image plot of dvc.yaml
    # the control: DVC's own page (Vega from the CDN) draws nothing here, so the network
    # really was out of reach
    from dvc_render.vega import VegaRenderer

    cdn = re.sub(r"<script>/\* Vega.*?</script>\n", "", html, flags=re.S)
    cdn = cdn.replace("<head>", f"<head>{VegaRenderer.SCRIPTS}", 1)
    assert cdn.count("<script src=") == 3
    control = page.with_name("cdn.html")
    control.write_text(cdn, encoding="utf-8")
    assert plots_page.drawn(plots_page.open_offline(control)) == 0
