"""Choosing a model for a request from the routes a config describes."""
