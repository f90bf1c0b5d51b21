"""Signals other apps may listen to without grading knowing them (LTI grade passback)."""

from django.dispatch import Signal

# Sent inside the transaction that releases (or releases again) a grade, with
# ``review``: the released ``Review``. Listeners' writes commit with the release.
grade_released = Signal()
