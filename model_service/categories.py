"""Sound categories users see, each mapped to AudioSet label names (never indexes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import csv
from dataclasses import dataclass
import functools
from importlib import resources
from pathlib import Path
import re


@dataclass(frozen=True, slots=True)
class Category:
    """A user-facing sound category and the AudioSet labels that stand for it."""

    id: str
    name: str
    labels: tuple[str, ...]
    # "sound": something heard, on while it lasts; "gesture": a sound pattern made on
    # purpose (claps, snaps), a momentary trigger.
    kind: str = "sound"


# AudioSet ontology display names. A model's labels are matched against these after
# normalisation, so "Smoke detector, smoke alarm" and "smoke_detector_smoke_alarm" agree.
# co_alarm has no AudioSet label: only the builtin tagger (temporal-four pattern) detects it.
CATEGORIES: tuple[Category, ...] = (
    Category("smoke_alarm", "Smoke alarm", ("Smoke detector, smoke alarm",)),
    Category("co_alarm", "Carbon monoxide alarm", ()),
    Category("fire_alarm", "Fire alarm", ("Fire alarm",)),
    Category("glass_break", "Glass breaking", ("Shatter", "Breaking")),
    Category("dog_bark", "Dog barking", ("Bark", "Dog", "Yip", "Bow-wow", "Growling")),
    Category("cat", "Cat", ("Cat", "Meow", "Purr", "Hiss", "Caterwaul")),
    Category("baby_cry", "Baby crying", ("Baby cry, infant cry",)),
    Category("scream", "Screaming", ("Screaming", "Yell")),
    Category(
        "speech",
        "Speech",
        (
            "Speech",
            "Male speech, man speaking",
            "Female speech, woman speaking",
            "Child speech, kid speaking",
            "Conversation",
            "Narration, monologue",
        ),
    ),
    Category("doorbell", "Doorbell", ("Doorbell", "Ding-dong")),
    Category("knock", "Knock", ("Knock",)),
    Category(
        "water_running",
        "Water running",
        (
            "Water tap, faucet",
            "Sink (filling or washing)",
            "Bathtub (filling or washing)",
            "Toilet flush",
        ),
    ),
    Category(
        "siren",
        "Siren",
        (
            "Siren",
            "Civil defense siren",
            "Police car (siren)",
            "Ambulance (siren)",
            "Fire engine, fire truck (siren)",
            "Emergency vehicle",
        ),
    ),
    Category("cough", "Cough", ("Cough",)),
    Category("appliance_beep", "Appliance beep", ("Beep, bleep", "Buzzer", "Alarm clock")),
    Category(
        "loud_noise",
        "Loud noise",
        ("Bang", "Slam", "Smash, crash", "Boom", "Explosion", "Thump, thud", "Crack"),
    ),
    # Not a kind of sound but a departure from what a source usually hears at this hour: live
    # sources report it (live/usual.py), whatever the tagger.
    Category("unusual_sound", "Unusual sound", ()),
    # Gestures have no AudioSet label of their own ("Clapping" is applause too): only the
    # builtin tagger's pattern detector reports them, with a neural tagger loaded as well.
    Category("double_clap", "Double clap", (), kind="gesture"),
    Category("triple_clap", "Triple clap", (), kind="gesture"),
    Category("double_snap", "Double finger snap", (), kind="gesture"),
)
GESTURE_IDS: tuple[str, ...] = tuple(c.id for c in CATEGORIES if c.kind == "gesture")

CATEGORY_IDS: tuple[str, ...] = tuple(c.id for c in CATEGORIES)
BY_ID: Mapping[str, Category] = {c.id: c for c in CATEGORIES}

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_label(label: str) -> str:
    """Normalise a label for matching: lower case, punctuation and underscores to spaces."""
    return " ".join(_NON_ALNUM.sub(" ", label.lower()).split())


def audioset_labels_file() -> Path:
    """AudioSet's `class_labels_indices.csv` as shipped with the service (`data/README.md`)."""
    return Path(str(resources.files("model_service").joinpath(AUDIOSET_LABELS_CSV)))


AUDIOSET_LABELS_CSV = "data/audioset_class_labels_indices.csv"


@functools.cache
def audioset_labels() -> tuple[str, ...]:
    """AudioSet's 527 display names in output order (shipped: `data/README.md`)."""
    with audioset_labels_file().open("r", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = tuple(row["display_name"] for row in sorted(rows, key=lambda row: int(row["index"])))
    assert len(labels) == 527, "the shipped AudioSet label list is incomplete"
    return labels


def cut_at_comma(label: str) -> str:
    """A label as CED's hub configuration names it: up to its first comma."""
    return label.split(",", 1)[0].strip()


def _label_table() -> dict[str, str]:
    table = {normalize_label(label): c.id for c in CATEGORIES for label in c.labels}
    full_names = {normalize_label(label) for label in audioset_labels()}
    for category in CATEGORIES:
        for label in category.labels:
            cut = normalize_label(cut_at_comma(label))
            # A cut name stands for its label only when no other AudioSet label is called so.
            if cut not in full_names:
                table.setdefault(cut, category.id)
    return table


_LABEL_TO_CATEGORY: Mapping[str, str] = _label_table()


def category_for_label(label: str) -> str | None:
    """Return the category id an AudioSet label belongs to, or None when it maps to none."""
    return _LABEL_TO_CATEGORY.get(normalize_label(label))


def map_labels(labels: Iterable[str]) -> dict[str, list[str]]:
    """Group a model's labels by category id (labels that map to no category are dropped).

    The result keeps category order and, within a category, the model's label order.
    """
    found: dict[str, list[str]] = {}
    for label in labels:
        cid = category_for_label(label)
        if cid is not None:
            found.setdefault(cid, []).append(label)
    return {cid: found[cid] for cid in CATEGORY_IDS if cid in found}


def describe(category_ids: Iterable[str]) -> list[dict[str, object]]:
    """Wire form of categories for `/v1/info`, in the canonical order."""
    wanted = set(category_ids)
    return [
        {"id": c.id, "name": c.name, "labels": list(c.labels), "kind": c.kind}
        for c in CATEGORIES
        if c.id in wanted
    ]
