"""What serving saw, per version: bounded aggregates per time window, and labels.

Serving (the router in ``modelgate_client``, or any replica) posts batches of
observations; each is folded into one row per (model, version, role, window) with
counts, sums, a prediction histogram and a bounded latency sample for rank tests.
Labels that arrive later are joined by request key. Rollout analysis
(:mod:`app.gates.canary`) reads the aggregates as :class:`~app.gates.canary.ArmData`.
"""
