"""Build the real-recording regression set (tests/model_service/recordings) from Debian packages.

    python -m devtools.build_recordings [--packages DIR]

Downloads the Debian packages named below (`apt-get download`, into DIR), unpacks them, cuts
each clip, converts it to 16 kHz mono Opus with ffmpeg and writes `manifest.json`: file, what
it is, the package and path it came from, the stretch taken and its licence (from the
package's copyright file). The clips are data under their own licences, not part of this
project's code. Re-running rebuilds the same set; the tests only read what is committed.

Mixes (speech over music, like television) are made here too, from two clips of the set.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import subprocess
import sys

import numpy as np

RATE = 16000
OUT = Path(__file__).resolve().parent.parent / "tests" / "model_service" / "recordings"
BITRATE = "32k"


@dataclass(frozen=True)
class Cut:
    """One clip: a stretch of a file of a Debian package."""

    name: str
    kind: str  # music, speech, tv, household, ringtone, hit
    package: str
    path: str
    licence: str
    start: float = 0.0
    seconds: float = 15.0
    note: str = ""


_MOH = "usr/share/asterisk/moh"
_COLOBOT = "usr/share/games/colobot/music"
_FDO = "usr/share/sounds/freedesktop/stereo"
_OXY = "usr/share/sounds"
_TUX = "usr/share/tuxpaint/sounds/magic"
_ALLISON = "usr/share/asterisk/sounds/en_US_f_Allison"
_DRUMKITS = "usr/share/hydrogen/data/drumkits"
_HAND = f"{_DRUMKITS}/Gimme A Hand 1.0"

CUTS: tuple[Cut, ...] = (
    # Music of several kinds. The colobot stretches are the ones on which the embedded tagger
    # once heard smoke (T3) or CO (T4) alarms: notes at 2.6-3.7 kHz in an alarm's rhythm.
    Cut(
        "music_acoustic",
        "music",
        "asterisk-moh-opsound-wav",
        f"{_MOH}/manolo_camp-morning_coffee.wav",
        "CC-BY-SA-3.0",
        5.0,
    ),
    Cut(
        "music_ambient",
        "music",
        "asterisk-moh-opsound-wav",
        f"{_MOH}/macroform-cold_day.wav",
        "CC-BY-SA-3.0",
        10.0,
    ),
    Cut(
        "music_electronic",
        "music",
        "asterisk-moh-opsound-wav",
        f"{_MOH}/reno_project-system.wav",
        "CC-BY-SA-3.0",
        160.0,
    ),
    Cut(
        "music_piano",
        "music",
        "asterisk-moh-opsound-wav",
        f"{_MOH}/macroform-the_simplicity.wav",
        "CC-BY-SA-3.0",
        85.0,
    ),
    Cut(
        "music_synth_co",
        "music",
        "colobot-common-sounds",
        f"{_COLOBOT}/music012.ogg",
        "GPL-3+",
        0.0,
        20.0,
        "once heard as a CO alarm at 11 s",
    ),
    Cut(
        "music_synth_smoke",
        "music",
        "colobot-common-sounds",
        f"{_COLOBOT}/Intro2.ogg",
        "GPL-3+",
        14.0,
        15.0,
        "once heard as a smoke alarm at 22.5 s of the track",
    ),
    Cut(
        "music_orchestral_co",
        "music",
        "colobot-common-sounds",
        f"{_COLOBOT}/music008.ogg",
        "GPL-3+",
        42.0,
        15.0,
        "once heard as a CO alarm at 50 s of the track",
    ),
    Cut(
        "music_rock_smoke",
        "music",
        "colobot-common-sounds",
        f"{_COLOBOT}/Proton.ogg",
        "GPL-3+",
        32.0,
        15.0,
        "once heard as a smoke alarm at 39.5 s of the track",
    ),
    Cut(
        "music_pads_smoke",
        "music",
        "colobot-common-sounds",
        f"{_COLOBOT}/music004.ogg",
        "GPL-3+",
        12.0,
        15.0,
        "once heard as a smoke alarm at 19 s of the track",
    ),
    # Speech (a recorded voice, not synthesized).
    Cut(
        "speech_prompts",
        "speech",
        "asterisk-core-sounds-en-wav",
        f"{_ALLISON}/vm-review.wav",
        "CC-BY-SA-3.0",
        0.0,
        8.0,
    ),
    # Ringtones, clock alarms, notification sounds.
    Cut(
        "clock_alarm",
        "ringtone",
        "sound-theme-freedesktop",
        f"{_FDO}/alarm-clock-elapsed.oga",
        "CC-BY-SA-3.0",
        0.0,
        10.0,
    ),
    Cut(
        "phone_ringing",
        "ringtone",
        "sound-theme-freedesktop",
        f"{_FDO}/phone-incoming-call.oga",
        "GPL-2+",
        0.0,
        10.0,
    ),
    Cut(
        "phone_calling",
        "ringtone",
        "sound-theme-freedesktop",
        f"{_FDO}/phone-outgoing-calling.oga",
        "GPL-2+",
        0.0,
        10.0,
    ),
    Cut(
        "phone_busy",
        "ringtone",
        "sound-theme-freedesktop",
        f"{_FDO}/phone-outgoing-busy.oga",
        "GPL-2+",
        0.0,
        10.0,
    ),
    Cut("bell", "ringtone", "sound-theme-freedesktop", f"{_FDO}/bell.oga", "CC-BY-3.0", 0.0, 5.0),
    Cut(
        "im_phone_ring",
        "ringtone",
        "oxygen-sounds",
        f"{_OXY}/Oxygen-Im-Phone-Ring.ogg",
        "LGPL-3.0-or-later",
        0.0,
        10.0,
    ),
    Cut(
        "critical_error",
        "ringtone",
        "oxygen-sounds",
        f"{_OXY}/Oxygen-Sys-App-Error-Critical.ogg",
        "LGPL-3.0-or-later",
        0.0,
        5.0,
    ),
    # Household and kitchen noise: rain on the window, a dripping tap, foam, paper.
    Cut("rain", "household", "tuxpaint-plugins-default", f"{_TUX}/rain.ogg", "GPL-2+", 0.0, 10.0),
    Cut("drip", "household", "tuxpaint-plugins-default", f"{_TUX}/drip.wav", "GPL-2+", 0.0, 5.0),
    Cut("foam", "household", "tuxpaint-plugins-default", f"{_TUX}/foam.ogg", "GPL-2+", 0.0, 5.0),
    Cut(
        "scrubbing",
        "household",
        "tuxpaint-plugins-default",
        f"{_TUX}/smudge.wav",
        "GPL-2+",
        0.0,
        5.0,
    ),
    Cut(
        "crumpled_paper",
        "household",
        "sound-theme-freedesktop",
        f"{_FDO}/trash-empty.oga",
        "CC-BY-3.0",
        0.0,
        5.0,
    ),
    Cut(
        "camera_shutter",
        "household",
        "sound-theme-freedesktop",
        f"{_FDO}/camera-shutter.oga",
        "CC-BY-SA-3.0",
        0.0,
        5.0,
    ),
    # Single hits played by hand: real claps and a finger snap (the sound gestures are built
    # from them), and hand percussion a gesture must not be taken for.
    *(
        Cut(name, "hit", "hydrogen-drumkits", f"{_HAND}/{file}", "GPL-2", 0.0, 1.0, note)
        for name, file, note in (
            ("hand_clap", "HandClap-Med.wav", "one clap"),
            ("hand_clap_hard", "HandClap-Hardest.wav", "one hard clap"),
            ("finger_snap", "Fingersnap-Med.wav", "one finger snap"),
            ("wood_block", "WoodBlock-Med.wav", "hand percussion"),
            ("cajon_slap", "CajonSlaps-Med.wav", "hand percussion"),
            ("clave", "Clave-Med.wav", "hand percussion"),
            ("bongo", "BongoHi-Med.wav", "hand percussion"),
            ("maraca", "Maraca-Med.wav", "hand percussion"),
            ("tambourine", "Tambourine-Med.wav", "hand percussion"),
        )
    ),
    Cut(
        "hand_clap_pearl",
        "hit",
        "hydrogen-drumkits",
        f"{_DRUMKITS}/The Black Pearl 1.0/HandClap.wav",
        "GPL-2",
        0.0,
        1.0,
        "one clap, another recording",
    ),
)

# Speech over music, as from a television: (name, speech clips in order, music clip, music dB
# under the speech).
MIXES: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    (
        "tv_speech_music",
        ("vm-review.wav", "vm-enter-num-to-call.wav", "vm-review.wav"),
        "music_acoustic",
        8.0,
    ),
    ("tv_speech_synth", ("vm-enter-num-to-call.wav", "vm-review.wav"), "music_synth_co", 4.0),
)
_MIX_LICENCE = "CC-BY-SA-3.0 (speech) with the music clip's licence"


def _download(packages: Path, names: set[str]) -> None:
    packages.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        target = packages / name
        if target.is_dir():
            continue
        subprocess.run(["apt-get", "download", name], cwd=packages, check=True)
        deb = next(packages.glob(f"{name}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)


def decode(path: Path, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Decode any audio file to 16 kHz mono float32 with ffmpeg."""
    args = ["ffmpeg", "-v", "error", "-ss", f"{start}", "-i", str(path)]
    if seconds is not None:
        args += ["-t", f"{seconds}"]
    args += ["-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"]
    raw = subprocess.run(args, check=True, capture_output=True).stdout
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0


def _encode(audio: np.ndarray, path: Path) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "s16le",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-i",
            "-",
            "-c:a",
            "libopus",
            "-b:a",
            BITRATE,
            str(path),
        ],
        input=pcm,
        check=True,
    )


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) + 1e-12


def main(argv: list[str] | None = None) -> int:
    """Build the set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=Path, default=Path("build/debian-sounds"))
    parser.add_argument(
        "--only-missing",
        action="store_true",
        help="keep the clips there are and build only the cuts whose file is missing",
    )
    args = parser.parse_args(argv)
    kept: dict[str, dict[str, object]] = {}
    if args.only_missing and (OUT / "manifest.json").exists():
        kept = {
            str(c["file"]): c
            for c in json.loads((OUT / "manifest.json").read_text())["clips"]
            if (OUT / str(c["file"])).exists()
        }
    wanted = [c for c in CUTS if f"{c.name}.opus" not in kept]
    _download(args.packages, {c.package for c in wanted})
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.opus"):
        if old.name not in kept:
            old.unlink()
    clips: list[dict[str, object]] = []
    audio_of: dict[str, np.ndarray] = {}
    for cut in CUTS:
        if f"{cut.name}.opus" in kept:
            clips.append(kept[f"{cut.name}.opus"])
            continue
        audio = decode(args.packages / cut.package / cut.path, cut.start, cut.seconds)
        audio_of[cut.name] = audio
        _encode(audio, OUT / f"{cut.name}.opus")
        clips.append(
            {
                "file": f"{cut.name}.opus",
                "kind": cut.kind,
                "source": f"Debian package {cut.package}: /{cut.path}",
                "start": cut.start,
                "seconds": round(audio.size / RATE, 2),
                "licence": cut.licence,
                "note": cut.note,
            }
        )
    speech_dir = args.packages / "asterisk-core-sounds-en-wav" / _ALLISON
    for name, parts, music, under_db in MIXES:
        if f"{name}.opus" in kept:
            clips.append(kept[f"{name}.opus"])
            continue
        speech = np.concatenate([decode(speech_dir / p) for p in parts])
        bed = audio_of[music]
        bed = np.resize(bed, speech.size) if bed.size < speech.size else bed[: speech.size]
        bed = bed * (_rms(speech) / _rms(bed)) * 10 ** (-under_db / 20)
        _encode(
            0.8 * (speech + bed) / max(1.0, float(np.max(np.abs(speech + bed)))),
            OUT / f"{name}.opus",
        )
        clips.append(
            {
                "file": f"{name}.opus",
                "kind": "tv",
                "source": (
                    f"mix: asterisk-core-sounds-en-wav /{_ALLISON}/{{{','.join(parts)}}} over "
                    f"{music}.opus, {under_db:g} dB under the speech"
                ),
                "start": 0.0,
                "seconds": round(speech.size / RATE, 2),
                "licence": _MIX_LICENCE,
                "note": "",
            }
        )
    manifest = {
        "about": (
            "Real recordings for the false-alarm regression gate (test_recordings.py): 16 kHz "
            "mono Opus, built by devtools/build_recordings.py from Debian packages. Each clip "
            "keeps its own licence (below); they are test data, not part of the code."
        ),
        "clips": clips,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(p.stat().st_size for p in OUT.glob("*.opus"))
    print(f"{len(clips)} clips, {total / 1e6:.2f} MB in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
