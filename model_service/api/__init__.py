"""The HTTP and WebSocket API: one module of routes per concern, built into one app."""
