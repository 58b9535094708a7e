"""Training: losses, schedules, the loop, checkpoints and the self-describing model package."""
