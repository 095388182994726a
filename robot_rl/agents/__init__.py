"""Learning agents: SAC/RLPD (with DrQ for pixels)."""
