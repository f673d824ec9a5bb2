"""The tuner: derive a plan from a profile, apply it, verify it by measurement."""
