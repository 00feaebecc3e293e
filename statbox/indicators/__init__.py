"""Fast indicators: scheduled, versioned papermill runs of ``indicators/<id>/``, published."""
