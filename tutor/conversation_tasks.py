"""Celery tasks of tutoring conversations."""
