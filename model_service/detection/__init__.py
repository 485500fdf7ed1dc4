"""Sound events from tagger scores: windows, the event tracker and the clip detection service."""
