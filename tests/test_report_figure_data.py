"""The report's figures plot the run's numbers: the data of each drawn line and bar is read
back from the matplotlib figure (values, not pixels) and compared with the artifacts it was
drawn from (metrics logs, the vote log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medssr_nemo.pipeline import figures
from medssr_nemo.pipeline.report import pseudo_label_section, training_section


@pytest.fixture
def drawn(monkeypatch):
    """Figures by file name, captured instead of written."""
    import matplotlib.pyplot as plt

    captured = {}

    def keep(fig, path: Path) -> Path:
        captured[path.name] = fig
        return path

    monkeypatch.setattr(figures, "_save", keep)
    yield captured
    for fig in captured.values():
        plt.close(fig)


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _lines(ax) -> dict[str, list[tuple[float, float]]]:
    return {line.get_label(): [tuple(map(float, xy)) for xy in line.get_xydata()] for line in ax.get_lines()}


def test_training_curves_plot_each_stage_metric_on_one_step_axis(tmp_path, drawn):
    """Catches: a panel plotting another metric, a stage drawn without its offset (stage 2 on top
    of stage 1), missing values drawn as zeros. Planted by hand: the panels' ``train/kl`` key
    swapped for ``reward/mean`` fails the KL panel check."""
    stage1 = [{"step": s, "reward/mean": 0.1 * s, "train/kl": 0.01 * s, "answer/format_rate": 0.5}
              for s in (1, 2, 3)]
    stage2 = [{"step": 1, "reward/mean": 0.7, "train/kl": None, "answer/format_rate": 0.25},
              {"step": 2, "reward/mean": 0.9, "train/kl": 0.02}]
    _write_jsonl(tmp_path / "stage1" / "metrics.jsonl", stage1)
    _write_jsonl(tmp_path / "stage2" / "metrics.jsonl", stage2)
    curves = {stage: training_section(tmp_path / stage)["curves"] for stage in ("stage1", "stage2")}
    figures.training_curves(curves, tmp_path / "training_curves.png")
    reward, kl, fmt = drawn["training_curves.png"].axes
    assert "reward" in reward.get_title() and "KL" in kl.get_title() and "answer is" in fmt.get_title()
    assert _lines(reward) == {"stage1": [(1, 0.1), (2, 0.2), (3, pytest.approx(0.3))], "stage2": [(4, 0.7), (5, 0.9)]}
    assert _lines(kl) == {"stage1": [(1, 0.01), (2, 0.02), (3, pytest.approx(0.03))], "stage2": [(5, 0.02)]}
    assert _lines(fmt) == {"stage1": [(1, 0.5), (2, 0.5), (3, 0.5)], "stage2": [(4, 0.25)]}


def test_agreement_histogram_bars_count_the_vote_log(tmp_path, drawn):
    """Catches: kept and dropped swapped, bars not stacked, levels out of order. Planted by hand:
    ``kept``/``dropped`` swapped in ``pseudo_label_section`` fails the heights check."""
    votes = ([{"id": f"k{i}", "agreement": 1.0, "kept": True, "label": "A", "gold": None} for i in range(3)]
             + [{"id": "h", "agreement": 0.5, "kept": True, "label": "B", "gold": None}]
             + [{"id": f"d{i}", "agreement": 0.5, "kept": False, "label": None, "gold": None} for i in range(2)]
             + [{"id": "t", "agreement": 0.25, "kept": False, "label": None, "gold": None}])
    _write_jsonl(tmp_path / "pseudo_labels" / "pseudo_labels.votes.jsonl", votes)
    section = pseudo_label_section(tmp_path)
    figures.agreement_histogram(section["agreement_histogram"], 0.5, tmp_path / "agreement.png")
    ax = drawn["agreement.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.25", "0.50", "1.00"]
    kept, dropped = ax.containers
    assert [b.get_height() for b in kept] == [0, 1, 3]
    assert [b.get_height() for b in dropped] == [1, 2, 0]
    assert [b.get_y() for b in dropped] == [0, 1, 3]           # stacked on the kept bars
