"""Calling providers: where each one lives, how to authenticate, when to retry."""
