"""Categories map AudioSet labels by name: full names, names cut at a comma, any spelling."""

from __future__ import annotations

from model_service import categories


def test_shipped_audioset_list_holds_every_category_label() -> None:
    """Each label a category uses is one of AudioSet's 527 names, in output order."""
    names = categories.audioset_labels()
    assert len(names) == 527
    assert names[0] == "Speech"
    assert names[399] == "Smoke detector, smoke alarm"
    for category in categories.CATEGORIES:
        for label in category.labels:
            assert label in names, f"{category.id}: {label!r} is not an AudioSet name"


def test_names_cut_at_the_first_comma_map_like_full_names() -> None:
    """CED's configuration cuts names; every category with labels still maps from them."""
    cut = [categories.cut_at_comma(name) for name in categories.audioset_labels()]
    full = categories.map_labels(categories.audioset_labels())
    assert set(categories.map_labels(cut)) == set(full)
    assert categories.category_for_label("Smoke detector") == "smoke_alarm"
    assert categories.category_for_label("Baby cry") == "baby_cry"
    assert categories.category_for_label("Beep") == "appliance_beep"
    # Labels no category uses map to none.
    assert categories.category_for_label("Speech synthesizer") is None
    assert categories.category_for_label("smoke_detector_smoke_alarm") == "smoke_alarm"
