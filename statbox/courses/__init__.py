"""Courses: the curriculum model, loading and checking, and (later) publishing to trainees."""

from statbox.courses.model import (
    Course,
    CurriculumError,
    Exercise,
    LoadedCourse,
    load_course,
    load_curriculum,
)

__all__ = [
    "Course",
    "CurriculumError",
    "Exercise",
    "LoadedCourse",
    "load_course",
    "load_curriculum",
]
