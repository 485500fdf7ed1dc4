"""Constants for the MiDasheng Audio integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "midasheng"
LOGGER = logging.getLogger(__package__)

CONF_CATEGORIES: Final = "categories"
CONF_SENSITIVITY: Final = "sensitivity"
CONF_CAMERA: Final = "camera"
CONF_REPAIR_AFTER: Final = "repair_after"
CONF_SOURCE_ID: Final = "source_id"

# A source on the service, as a config subentry of the service's entry.
SUBENTRY_SOURCE: Final = "source"

DEFAULT_SENSITIVITY: Final = "medium"

EVENT_SOUND: Final = "midasheng_sound_event"
# A sound gesture (double clap...) on a source: device triggers listen to it.
EVENT_GESTURE: Final = "midasheng_gesture"
# A gesture older than this when it arrives (replayed after a reconnect) triggers nothing: a
# light must not toggle minutes after the claps.
GESTURE_MAX_AGE: Final = 10.0
# The gestures this integration offers device triggers for (the service says which it hears).
GESTURE_TYPES: Final = ("double_clap", "triple_clap", "double_snap")
# The kind of category a sound taught by example is (`custom:<slug>`, named by the user).
TAUGHT_KIND: Final = "taught"

# Every category the service may offer, in the order entities are created.
KNOWN_CATEGORIES: Final = (
    "smoke_alarm",
    "co_alarm",
    "fire_alarm",
    "glass_break",
    "dog_bark",
    "cat",
    "baby_cry",
    "scream",
    "speech",
    "doorbell",
    "knock",
    "water_running",
    "siren",
    "cough",
    "appliance_beep",
    "loud_noise",
    "unusual_sound",
)

STORAGE_VERSION: Final = 1
STORAGE_SAVE_DELAY: Final = 5
# How many events the push connection remembers (by seq, with the rev it handled last) to
# tell a repeated start or end from a new one; older events count as already delivered.
SEEN_EVENTS_MAX: Final = 1000

# Reconnect backoff for the push connection: doubles from the first value up to the second.
RECONNECT_MIN_DELAY: Final = 1.0
RECONNECT_MAX_DELAY: Final = 60.0
# A repair issue is raised when a source has not been heard, or the service not reached, for
# this long (the entry's `repair_after` option); the detectors are unavailable at once.
DEFAULT_REPAIR_AFTER: Final = {"hours": 0, "minutes": 5, "seconds": 0}
MIN_REPAIR_AFTER: Final = timedelta(seconds=5)

# Sound level: write at most every LEVEL_INTERVAL, sooner (but at most once a second) when
# the level jumps by LEVEL_JUMP_DB, so a loud sound shows without flooding the recorder.
# Measured with the real recorder (tests/components/midasheng/test_recorder_cost.py): a room
# with a loud sound every few minutes costs about 130 states an hour per source at 60 s
# (0.3 MB a day in SQLite), against about 380 (1.4 MB a day) at 10 s.
LEVEL_INTERVAL: Final = timedelta(seconds=60)
LEVEL_MIN_INTERVAL: Final = timedelta(seconds=1)
LEVEL_JUMP_DB: Final = 6.0

ISSUE_UNREACHABLE: Final = "service_unreachable"
ISSUE_DEAF: Final = "source_deaf"
ISSUE_STORAGE: Final = "storage_problem"
ISSUE_INCOMPATIBLE: Final = "incompatible_version"
