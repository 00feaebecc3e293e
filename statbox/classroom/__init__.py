"""The classroom: what trainees and instructors do with a course, as one library.

The web service (``statbox.classroom.web``) and the command line call the same functions,
so they cannot disagree. Every function takes the acting user (:class:`Actor`: their name
and the groups the identity provider or the hub gives them) and refuses, with a typed error
(:class:`NotAllowed`, :class:`NotFound`), what that user may not do. Nothing here knows
about Tornado or HTTP: a web handler authenticates the request, builds an :class:`Actor`,
calls one method of :class:`Classroom` and renders what it returns.

Who may do what (settings ``groups``/``cohorts`` plus the identity provider's groups):

* a **trainee** of cohort K (member of the group K, role trainee) opens and submits the
  courses published to K whose audience includes their role, and reads their own released
  results; nothing of anyone else;
* an **instructor** of cohort K (member of the group K, role instructor) publishes to K,
  watches who opened and submitted, grades, re-grades one trainee, reports and releases, for
  K and no other cohort;
* an **admin**, and the operator on the host (``Actor.operator()``), may act on every cohort.

State lives under ``<state>/classroom/`` (see :mod:`statbox.classroom.state`), out of every
trainee's reach: publications, submission snapshots (0600, with their SHA-256), grading
jobs with their live progress, releases.
"""

from statbox.classroom.errors import NotAllowed, NotFound
from statbox.classroom.people import Actor
from statbox.classroom.service import Classroom

__all__ = ["Actor", "Classroom", "NotAllowed", "NotFound"]
