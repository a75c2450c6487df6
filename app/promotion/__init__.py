"""Gate policies, promotion requests, reviewer decisions, stage transitions and rollback."""
