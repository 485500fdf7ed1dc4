"""Live detection: sources (ffmpeg and pushed audio), their stream runtime and the event store."""
