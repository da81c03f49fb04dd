"""The bundled pathways tell webhook subscribers what happened (issue 17, point 3), end to end: an
emergency found by a needs assessment on the breast pathway is told at once as ``emergency.opened``,
with ids and types only, in the transaction of the step that found it."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import WebhookDelivery

from .safety_journeys import emergency_before_agreement


def test_an_emergency_on_a_bundled_pathway_is_told_at_once(bundled: CarePath, journey_clock: ManualClock) -> None:
    subscription, _secret = bundled.webhook_admin.add("https://ehr.example.org/carepath", ["emergency.opened"])
    j = emergency_before_agreement(bundled, journey_clock, "SYN-0601")
    with bundled.sessions() as session:
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == "emergency.opened")).all()
    assert [(row.subscription_id, row.instance_id, row.status) for row in rows] == [
        (subscription.id, j.view.id, "pending")
    ]
    body = json.loads(rows[0].body)
    assert body["type"] == "emergency.opened" and body["data"]["instance_id"] == j.view.id
    assert "SYN-0601" not in rows[0].body and "fever" not in rows[0].body  # ids and types, never values
