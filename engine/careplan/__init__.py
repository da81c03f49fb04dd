"""The personalised care and support plan: items proposed by rules, the patient's decisions, statuses.

Owns: care plan items and notes, their status moves and history (``moves``), referrals' timeframes,
one open referral per service and the escalation of late ones (``referrals``), and the service operators
pathways call (``carepath.rules``, ``carepath.careplan``, ``carepath.referrals``; and in
``patient_status``, ``carepath.patient_status``, the status every branch of an instance shares, and
``carepath.warning_sign``, a reported warning sign looked up in the catalogue; and in ``reassessment``,
``carepath.reassessment``, the triggers that start a needs assessment again; and in ``summaries``,
``carepath.end_of_treatment_summary``, the End of Treatment Summary of each phase of care, and the
worker's scan that opens a task when one is overdue).

May import: ``engine.rules``, ``engine.instances`` (the step context operators run in, and the
store that records their events), ``engine.audit``, ``engine.db``, ``engine.webhooks`` (noting referral
changes for the ``referral.*`` webhooks) and the shared modules.
"""
