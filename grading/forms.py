"""Forms of the grading pages: they validate input; services act on it."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from grading.models import Assignment

RUBRIC_FILE_MAX_BYTES = 1024 * 1024
ESSAY_FILE_MAX_BYTES = 20 * 1024 * 1024


class AssignmentForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    prompt = forms.CharField(label=_("Essay prompt"), widget=forms.Textarea(), required=False)
    due_at = forms.DateTimeField(
        label=_("Due"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
    resubmission_policy = forms.ChoiceField(
        label=_("Resubmission"),
        choices=Assignment.ResubmissionPolicy.choices,
        initial=Assignment.ResubmissionPolicy.UNTIL_DUE,
    )
    rubric_json = forms.CharField(
        label=_("Rubric (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("Paste an exported rubric, or fill in the criteria below."),
    )
    rubric_file = forms.FileField(label=_("Or import a rubric file (.json)"), required=False)

    def clean_rubric_file(self):
        upload = self.cleaned_data.get("rubric_file")
        if upload is None:
            return None
        if upload.size > RUBRIC_FILE_MAX_BYTES:
            raise ValidationError(_("The rubric file is too large."))
        try:
            return json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValidationError(_("The rubric file is not valid JSON: %s") % error) from None

    def clean_rubric_json(self):
        raw = self.cleaned_data.get("rubric_json", "").strip()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValidationError(_("The rubric is not valid JSON: %s") % error) from None


class CriterionForm(forms.Form):
    name = forms.CharField(label=_("Criterion"), max_length=100, required=False)
    min = forms.DecimalField(label=_("Lowest score"), required=False, initial=0)
    max = forms.DecimalField(label=_("Highest score"), required=False)
    step = forms.DecimalField(label=_("Step"), required=False, initial=1)
    levels = forms.CharField(
        label=_("Level descriptors"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line: score: what work at this level looks like."),
    )

    def as_rubric_entry(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("name"):
            return None
        levels = {}
        for line in (data.get("levels") or "").splitlines():
            if ":" in line:
                score, text = line.split(":", 1)
                levels[score.strip()] = text.strip()
        return {
            "name": data["name"],
            "min": data.get("min") if data.get("min") is not None else 0,
            "max": data.get("max"),
            "step": data.get("step") or 1,
            "levels": levels,
        }


CriterionFormSet = forms.formset_factory(CriterionForm, extra=4, max_num=30)


class EssayTextarea(forms.Textarea):
    """A textarea that gives back a refused essay without its NUL characters, so the
    student can send it again as it is (the message says what was wrong)."""

    def format_value(self, value):
        if isinstance(value, str):
            value = value.replace("\x00", "")
        return super().format_value(value)


class SubmissionForm(forms.Form):
    text = forms.CharField(
        label=_("Your essay"),
        required=False,
        # data-draft: static/js/drafts.js keeps what is typed in this browser.
        widget=EssayTextarea(attrs={"rows": 16, "data-draft": ""}),
        error_messages={
            "null_characters_not_allowed": _(
                "Your essay contained a NUL character, an invisible control character that "
                "sometimes comes with text copied from another program. It has been removed "
                "below: check your essay and submit it again."
            )
        },
    )
    upload = forms.FileField(label=_("Or upload a file (.txt, .docx, .pdf)"), required=False)

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload is not None and upload.size > ESSAY_FILE_MAX_BYTES:
            raise ValidationError(_("The file is too large."))
        return upload


class CriterionDecisionForm(forms.Form):
    score = forms.DecimalField(label=_("Score"), max_digits=6, decimal_places=2)
    comment = forms.CharField(label=_("Comment for the student"), required=False)
    reason = forms.CharField(label=_("Reason for a change"), required=False, max_length=2000)


class EssayCriterionForm(CriterionDecisionForm):
    """One criterion inside the essay's single review form: a criterion left without a
    score stays undecided."""

    score = forms.DecimalField(label=_("Score"), max_digits=6, decimal_places=2, required=False)


class BulkApproveForm(forms.Form):
    min_confidence = forms.DecimalField(
        label=_("Approve essays whose every criterion is at least this confident"),
        min_value=0,
        max_value=1,
        decimal_places=2,
        initial="0.80",
    )


class RegradeForm(forms.Form):
    comment = forms.CharField(
        label=_("What should your teacher look at again?"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class FeedbackForm(forms.Form):
    strengths = forms.CharField(
        label=_("Strengths (one per line)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    next_steps = forms.CharField(
        label=_("Next steps (one per line)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
