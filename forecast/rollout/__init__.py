"""Autoregressive rollouts: a generator of steps that writers, guards and scorers consume."""
