"""Celery tasks of course material (queue ``cpu``): thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from material import services


@shared_task(
    name="tutor.tasks.material_ingest_task",
    autoretry_for=(services.IngestInterrupted,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=3,
)
def material_ingest_task(material_id: int) -> str:
    """Ingest one material; a redelivered or duplicate task finds it claimed and stops."""
    material = services.material_ingest(material_id=material_id)
    return material.status if material is not None else "not-queued"
