"""Drift monitoring: reference profiles of training data, drift reports of production
windows against them, and the retrain trigger."""
