"""The classroom service: Statbox's own hub-managed web service at ``/services/classroom/``.

Trainees see and submit their cohort's courses, instructors publish, watch, grade and
certify, and anyone checks a certificate (:mod:`.app`); every right is the classroom
library's to decide (:mod:`.library`). Run by the hub: ``python -m statbox.classroom.web``.
"""
