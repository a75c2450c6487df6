"""What serves: the serving plan of each model (its revision, routes, shadows, aliases),
the aliases themselves, and the watch that tells waiting clients about a new plan."""
