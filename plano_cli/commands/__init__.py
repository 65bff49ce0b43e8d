"""One module per `plano` command."""
