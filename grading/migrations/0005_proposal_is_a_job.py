"""Proposal becomes a config.jobs.Job: the claim's time takes the job machine's name
(``started_at`` → ``claimed_at``, a rename: rows keep their values). Unfinished proposals
without a lease (claimed or queued before leases existed) get one that has lapsed, so the
recovery sweep finds them at once; this replaces the rule that took such a proposal over
once its claim was older than the task time limit."""

from django.db import migrations
from django.utils import timezone


def unfinished_proposals_without_a_lease_lapse_now(apps, schema_editor):
    Proposal = apps.get_model("grading", "Proposal")
    Proposal.objects.filter(status__in=["queued", "running"], lease_until__isnull=True).update(
        lease_until=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("grading", "0004_scorer_training_digest_and_vectors"),
    ]

    operations = [
        migrations.RenameField(model_name="proposal", old_name="started_at", new_name="claimed_at"),
        migrations.RunPython(
            unfinished_proposals_without_a_lease_lapse_now, migrations.RunPython.noop
        ),
    ]
