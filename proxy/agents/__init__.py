"""Agent listeners: an orchestrator picks agents and their order, the chain runs them."""
