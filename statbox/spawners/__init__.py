"""Spawners per deployment mode, sharing one mixin that applies the user's role."""
