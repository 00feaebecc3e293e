"""Fast indicators: a notebook and its definition (``indicators/<id>/``), run for each
reference period in the grading sandbox, published as versioned series (vintages) with their
revisions, in CSV, SDMX-CSV and SDMX-JSON. :mod:`statbox.indicators.library` is what the
command line, the scheduler and the pages call."""
