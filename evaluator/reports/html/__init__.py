"""One self-contained HTML page from a comparison (evaluator.reports.compare): nothing external.

Styles, the sorting script and every chart (inline SVG) live in the page;
images are embedded as data URIs, so the file can be mailed or archived and
opens offline. `seedbench report RUN --html` is the same page for one run.
Parts: style (look, escaping), tables, charts, gallery (L3), page (the whole).
"""

from evaluator.reports.html.page import render, write

__all__ = ["render", "write"]
