"""Real engines for tests: each module starts (or finds) one engine on loopback and cleans up."""
