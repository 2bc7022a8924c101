"""Results views: the ``recwise results`` table, the results.csv importer and the static HTML report.

The rows themselves live in :mod:`recwise.store`; everything here reads them.
"""

from recwise.report._import import ImportSummary, import_results
from recwise.report._page import build_report, lower_is_better, metric_order, render_page

__all__ = ["ImportSummary", "build_report", "import_results", "lower_is_better", "metric_order", "render_page"]
