"""One training step's pieces: judging the rollouts, the log-prob forward, the losses, per-modality statistics."""
