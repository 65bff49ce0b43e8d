"""Client keys: which callers a listener accepts (`listeners[].auth`)."""
