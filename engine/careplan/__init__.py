"""The personalised care and support plan: items proposed by rules, the patient's decisions, statuses.

Owns: care plan items and notes, their status moves (``service``), and the service operators
pathways call (``carepath.rules``, ``carepath.careplan``, ``carepath.referrals``).

May import: ``engine.rules``, ``engine.instances`` (the step context operators run in, and the
store that records their events), ``engine.audit``, ``engine.db`` and the shared modules.
"""
