"""Live detection: sources (ffmpeg and pushed audio), their runtime, the manager that owns
them, the hub that fans out to subscribers, and the event store."""
