"""The proxy's HTTP side: one aiohttp application per listener, and their lifecycle."""
