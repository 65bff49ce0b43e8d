"""Models Plano serves itself, offline: the `local` provider."""
