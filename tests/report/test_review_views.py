"""What a reviewer sees: slices in numeric order, point overlays as open rings (outlines, not covers), and each
test object zoomed at full resolution, as acquired beside the outlined view."""

from __future__ import annotations

import numpy as np

from qckit.core.results import Circle, Overlay, Point
from qckit.report.qc_report import natural_key, overlay_figure, overlay_figures, zoom_figure


def _overlay(key: str) -> Overlay:
    img = np.zeros((200, 200))
    img[50:60, 50:60] = 100.0  # a "hole array" block
    img[140:150, 140:150] = 100.0
    shapes = [Point((52.0, 52.0), "1.0 mm resolved"), Point((57.0, 57.0), "1.0 mm resolved"),
              Circle((145.0, 145.0), 5.0, "disk 1")]  # fmt: skip
    return Overlay(key, img, (0.5, 0.5), shapes)


def test_slices_in_numeric_order():
    keys = ["t1 slice 10", "t1 slice 2", "t1 slice 1", "t2 slice 11"]
    assert sorted(keys, key=natural_key) == ["t1 slice 1", "t1 slice 2", "t1 slice 10", "t2 slice 11"]
    figs = overlay_figures([_overlay(k) for k in keys])
    assert [f["layout"]["title"]["text"] for f in figs] == [
        "t1 slice 1",
        "t1 slice 2",
        "t1 slice 10",
        "t2 slice 11",
    ]


def test_points_are_open_rings():
    fig = overlay_figure(_overlay("t1 slice 1"))
    points = [t for t in fig["data"] if t.get("mode") == "markers"]
    assert points and all(t["marker"]["symbol"] == "circle-open" for t in points)


def test_zoomed_test_objects_show_the_pixels_as_acquired_beside_the_outlines():
    fig = zoom_figure(_overlay("t1 slice 1"))
    heat = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heat) == 4  # two groups x (as acquired, outlined)
    outlines = [t for t in fig["data"] if t["type"] == "scatter"]
    assert {t["xaxis"] for t in outlines} == {"x2", "x4"}  # outlines only on the right-hand panels
    # the hole block is inside its crop, at full resolution (no down-sampling): the crop holds the 10 px block
    ax = fig["layout"]["xaxis"]
    assert ax["range"][1] - ax["range"][0] >= 10
    assert zoom_figure(Overlay("empty", np.zeros((10, 10)), (1.0, 1.0), [])) is None
