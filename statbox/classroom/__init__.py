"""The classroom: courses published to cohorts, submissions, grading and certificates."""
