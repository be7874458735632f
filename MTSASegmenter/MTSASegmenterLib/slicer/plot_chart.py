"""The per-slice plot of the panel: a Slicer plot chart (table, series, threshold line) in the scene."""

from __future__ import annotations

from .bridge import _slicer


def egfr_plot_chart_node(scene, xs: list[float], ys: list[float], threshold: float | None, chart_node=None,
                         title: str = "EGFR mutant probability per slice", probability: bool = True):
    """A plot chart of a head's per-slice values (EGFR by default) and its decision threshold
    (none for a regression head), reused across runs; the title follows the model's first head.
    A chart (or its table) the user removed from the scene is drawn anew, never left empty."""
    slicer = _slicer()
    import vtk

    table_node = None
    if chart_node is not None and chart_node.GetScene() is not scene:
        chart_node = None
    if chart_node is None:
        chart_node = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "MTSASegmenter per slice")
        chart_node.SetXAxisTitle("slice")
    else:
        series = chart_node.GetNthPlotSeriesNode(0)
        table_node = series.GetTableNode() if series is not None else None
    if table_node is None or table_node.GetScene() is not scene:
        chart_node.RemoveAllPlotSeriesNodeIDs()
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "MTSASegmenter per slice table")
        columns = [("slice", vtk.vtkDoubleArray), ("probability", vtk.vtkDoubleArray), ("threshold", vtk.vtkDoubleArray)]
        for column_name, cls in columns:
            column = cls()
            column.SetName(column_name)
            table_node.AddColumn(column)
        for column_name, color in (("probability", (0.2, 0.45, 0.85)), ("threshold", (0.6, 0.6, 0.6))):
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", column_name)
            series.SetAndObserveTableNodeID(table_node.GetID())
            series.SetXColumnName("slice")
            series.SetYColumnName(column_name)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetColor(*color)
            if column_name == "threshold":
                series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
                series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash)
            chart_node.AddAndObservePlotSeriesNodeID(series.GetID())
    chart_node.SetTitle(title)
    chart_node.SetYAxisTitle("probability" if probability else "value")
    chart_node.SetYAxisRange(0.0, 1.0)
    chart_node.SetYAxisRangeAuto(not probability)
    table = table_node.GetTable()
    table.SetNumberOfRows(len(xs))
    for row, (x, y) in enumerate(zip(xs, ys)):
        table.SetValue(row, 0, float(x))
        table.SetValue(row, 1, float(y))
        table.SetValue(row, 2, float("nan") if threshold is None else float(threshold))
    table.Modified()
    table_node.Modified()
    return chart_node


def private_plot_view(scene, view_node=None):
    """The panel's own plot view node: it shows the chart the panel sets and never follows the chart
    another module selects (DoPropagatePlotChartSelection), and it is not saved with the scene."""
    if view_node is not None and view_node.GetScene() is scene:
        return view_node
    view_node = scene.AddNewNodeByClass("vtkMRMLPlotViewNode", "MTSASegmenter plot view")
    view_node.SetDoPropagatePlotChartSelection(False)
    view_node.SetSaveWithScene(False)
    return view_node
