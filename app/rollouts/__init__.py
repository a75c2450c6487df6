"""Progressive delivery: rollouts of a version step by step, judged by canary analysis."""
