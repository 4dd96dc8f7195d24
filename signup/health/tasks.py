"""The heartbeat task: any worker consuming the intake queue records that it is alive."""

from __future__ import annotations

from celery import shared_task

from signup.health import heartbeat


@shared_task(name="signup.health.tasks.heartbeat", ignore_result=True)
def beat() -> None:
    """Record a worker's sign of life (read by /readyz)."""
    heartbeat.record()
