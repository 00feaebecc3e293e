"""Certification: grade a cohort's exercise fairly, fast and safely, and issue certificates.

- :mod:`.variants`: per-trainee parameters from a cohort secret; ``make_personaliser`` is
  the course publisher's ``personalise(trainee, notebook_json)`` hook.
- :mod:`.pipeline`: grading one submission as switchable steps (restore protected cells,
  inject parameters, execute, check, score).
- :mod:`.isolation` and :mod:`.execution`: the isolated kernel (backends by name) and
  running a notebook in it with papermill; ``_sandbox.py`` is the launcher.
- :mod:`.runner`: a cohort on N workers (or ``--dask``, :mod:`.dask`), recorded in the
  results store (:mod:`.store`).
- :mod:`.report`, :mod:`.certificates`, :mod:`.pdf`: the cohort report and signed
  certificates; :mod:`.collect`: gathering submissions; :mod:`.cli`: ``statbox certify``.
"""
