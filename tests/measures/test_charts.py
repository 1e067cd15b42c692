"""SVG charts: well-formed, escaped, coloured by variation, with "no data" months marked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.measures.charts import COLOURS, render_svg
from app.measures.definitions import Improvement
from app.measures.spc import Variation, p_chart, xmr

SVG = "{http://www.w3.org/2000/svg}"


def test_an_svg_with_every_month_and_the_colours_of_its_signals() -> None:
    labels = [f"2026-{m:02d}" for m in range(1, 10)]
    values: list[float | None] = [0.11, 0.09, 0.11, 0.09, 0.11, 0.09, 0.11, None, 0.30]
    chart = xmr(labels, values, baseline=range(7), improvement=Improvement.down)
    svg = render_svg(chart, title='Smoking at booking: <St "Elsewhere"> & Co')
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title").text == 'Smoking at booking: <St "Elsewhere"> & Co'  # type: ignore[union-attr]
    dots = root.findall(f".//{SVG}circle[@data-variation]")
    assert len(dots) == 8  # nine months, one without data
    assert dots[-1].get("fill") == COLOURS[Variation.concern]  # 30% is above the limit
    assert {d.get("fill") for d in dots[:-1]} == {COLOURS[Variation.common_cause]}
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("no data") for t in texts)
    assert "2026-09" in texts
    assert "Latest month 2026-09: 30.0%" in root.find(f"{SVG}desc").text  # type: ignore[operator,union-attr]


def test_a_p_chart_draws_stepped_limits_and_an_empty_chart_still_renders() -> None:
    chart = p_chart(["a", "b", "c"], [5, 30, 8], [50, 100, 40], improvement=Improvement.up)
    root = ET.fromstring(render_svg(chart, title="CO test at booking"))
    upper = root.findall(f".//{SVG}polyline[@class='upper']")
    assert len(upper) == 1 and len(upper[0].get("points", "").split()) == 6  # two per month
    empty = p_chart(["a", "b"], [0, 0], [0, 0])
    root = ET.fromstring(render_svg(empty, title="Nothing yet"))
    assert root.find(f"{SVG}desc").text == "No data in these months."  # type: ignore[union-attr]
