"""The `plano` command line."""
