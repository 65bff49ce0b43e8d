"""Provider knowledge and (later) one adapter per upstream wire protocol."""
