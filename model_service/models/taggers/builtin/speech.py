"""Speech: silero-vad, gated to the windows whose last hop could hold a voice, with its
recurrent state kept per stream and restarted at anchors so music and tones do not fire it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_service.arrays import Array, Samples
from model_service.models.taggers.base import Window
from model_service.models.taggers.builtin.features import (
    LOW_F,
    LOW_SAL,
    LVL,
    SPEECH_DB,
    TONAL,
    FrameBatch,
)
from model_service.models.taggers.builtin.patterns import TONAL_SAL_DB
from model_service.models.taggers.builtin.state import StreamState, VadRun

VAD_CHUNK = 512  # silero-vad at 16 kHz takes 512 new samples plus 64 of context per step
VAD_CONTEXT = 64

# silero-vad is recurrent. Started cold on a second of audio it fires on music and tones
# (measured on synthetic clips: 5 of 6 music clips reached 0.58-0.97, the 520 Hz alarm 0.86);
# with 3 s of warm-up 2 of 6 (0.52-0.66) and 0.56, close to a continuous stream. So its state restarts at anchor chunks every
# VAD_ANCHOR chunks and runs at least VAD_WARMUP chunks before its output is used; states are
# cached per stream, so a window advances it by its ~16 new chunks.
VAD_WARMUP = 80
VAD_ANCHOR = 64
VAD_SMOOTH = 8  # probabilities are averaged over 8 chunks (256 ms): music gives short spikes
STEADY_FRAMES = 5  # a pitch held within 0.5 % for 50 ms is a note or a tone, not a voice
STEADY_TOL = 0.005
STEADY_SHARE = 0.3
TONE_SHARE = 0.85
BACKGROUND_DB = 6.0  # speech peaks rise this far over a window's background level


@dataclass(slots=True)
class _VadRow:
    """One recurrent silero-vad run in a batch: a stream's anchor, from `begin` to `j_last`."""

    stream: str | None
    anchor: int
    begin: int
    j_last: int
    source: int  # the window whose audio holds the run's chunks
    run: VadRun | None
    probs: dict[int, float] = field(default_factory=dict)


def _smoothed_max(probs: dict[int, float], first: int, last: int) -> float:
    """Highest VAD_SMOOTH-chunk average of the probabilities of chunks first..last."""
    best = 0.0
    for j in range(first, last + 1):
        vals = [probs[k] for k in range(j - VAD_SMOOTH + 1, j + 1) if k in probs]
        if vals:
            best = max(best, sum(vals) / len(vals))
    return best


def load_vad() -> Any:
    """Load silero-vad's bundled TorchScript model, keeping the caller's torch thread count."""
    import torch

    threads = torch.get_num_threads()
    # Importing silero_vad sets torch's intra-op threads to 1; that is the service's call.
    from silero_vad import load_silero_vad

    torch.set_num_threads(threads)
    model = load_silero_vad(onnx=False)
    model.eval()
    return model


class VadSpeech:
    """Speech from silero-vad, run only where the audio could be speech.

    Shares the tagger's per-stream cache (its VAD states live beside the frame features) and
    its statistics.
    """

    def __init__(
        self,
        model: Any,
        *,
        cache: OrderedDict[str, StreamState],
        stats: dict[str, int],
        hop_samples: int,
        vad_gate: bool,
        vad_min_dbfs: float,
    ) -> None:
        """Wrap a loaded silero-vad model."""
        self._vad = model
        self._cache = cache
        self.stats = stats
        self._hop_samples = hop_samples
        self.vad_gate = vad_gate
        self.vad_min_dbfs = vad_min_dbfs

    def _vad_needed(self, batch: FrameBatch) -> Array:
        """Which windows' last hop could hold speech (see `_speech`)."""
        n = batch.x.shape[0]
        if not self.vad_gate:
            return np.ones(n, bool)
        x, hop = batch.x, batch.lasthop
        with np.errstate(invalid="ignore"):
            loudest = np.where(hop, x[:, :, SPEECH_DB], -np.inf).max(axis=1)
            share = np.where(hop, x[:, :, SPEECH_DB] - x[:, :, LVL], -np.inf).max(axis=1)
            frames = np.maximum(hop.sum(axis=1), 1)
            tone = np.where(hop, x[:, :, TONAL] >= TONE_SHARE, False).sum(axis=1) / frames
            # Held pitch: the strongest 100 Hz-2 kHz peak stays put for 50 ms, over the frames
            # within 10 dB of the hop's loudest (so pauses showing a steady hum do not count).
            f, sal, lvl = x[:, :, LOW_F], x[:, :, LOW_SAL], x[:, :, LVL]
            held = np.zeros_like(hop)
            k = STEADY_FRAMES
            held[:, k:] = (
                (sal[:, k:] >= TONAL_SAL_DB)
                & (sal[:, :-k] >= TONAL_SAL_DB)
                & (np.abs(f[:, k:] - f[:, :-k]) <= STEADY_TOL * f[:, k:])
            )
            top = np.where(hop, lvl, -np.inf).max(axis=1)
            loud = hop & (lvl >= top[:, None] - 10.0)
            steady = (held & loud).sum(axis=1) / np.maximum(loud.sum(axis=1), 1)
            # The background: the 20th percentile of the window's speech-band level (padding
            # sorts last as NaN). Nothing rising above it in the last hop is steady noise.
            valid = batch.frames - batch.first
            ordered = np.sort(x[:, :, SPEECH_DB], axis=1)
            background = ordered[np.arange(n), (valid * 0.2).astype(np.int64)]
        needed: Array = (
            (loudest >= self.vad_min_dbfs)
            & (loudest >= background + BACKGROUND_DB)
            & (share >= -20.0)
            & (tone < 0.8)
            & (steady < STEADY_SHARE)
        )
        return needed

    def score(
        self, windows: Sequence[Window], audio: Sequence[Samples], batch: FrameBatch
    ) -> Array:
        """Speech: silero-vad probabilities over the chunks of the last hop, averaged over
        256 ms, highest wins. The recurrent state starts at an anchor 2.5-4.5 s back.

        VAD is skipped (score 0) where the last hop cannot hold speech: its 250 Hz-4 kHz energy
        is under `vad_min_dbfs`, under 1 % of the total (rumble, hum) or never 6 dB over the
        window's background (steady noise), most of it is one pure tone, or a held pitch
        dominates (tones, ring-back, musical notes). So speech over music or under a loud
        alarm, and whispers below the level, are not reported; silero-vad
        itself takes speech-like babble (a TV, a crowd) for speech and scores some synthetic
        voices low (espeak's female variants: 0.3-0.9).
        """
        n = len(windows)
        out = np.zeros(n)
        need = self._vad_needed(batch)
        targets = [int(i) for i in np.flatnonzero(need)]
        self.stats["vad_windows"] += len(targets)
        self.stats["vad_skipped"] += n - len(targets)
        # Windows of one stream with one anchor share one recurrent run: the run that reaches
        # the latest of them passes through every earlier one's chunks on the way.
        rows: dict[tuple[Any, int], _VadRow] = {}
        wants: list[tuple[int, tuple[Any, int], int, int]] = []
        for i in targets:
            w, a = windows[i], audio[i]
            start = w.end - a.size
            j_last = w.end // VAD_CHUNK - 1
            j_first = -(-(start + VAD_CONTEXT) // VAD_CHUNK)
            if j_last < j_first:
                continue
            anchor = max(j_first, (j_last - VAD_WARMUP) // VAD_ANCHOR * VAD_ANCHOR)
            hop_first = max(anchor, (w.end - self._hop_samples) // VAD_CHUNK)
            state = self._cache.get(w.stream) if w.stream is not None else None
            key: tuple[Any, int] = (
                (w.stream, anchor) if state is not None else (("window", i), anchor)
            )
            row = rows.get(key)
            if row is None:
                run = state.vad.get(anchor) if state is not None else None
                begin = anchor if run is None else run.j_done + 1
                row = rows[key] = _VadRow(
                    w.stream if state is not None else None, anchor, begin, j_last, i, run
                )
            elif j_last > row.j_last:
                row.j_last, row.source = j_last, i
            wants.append((i, key, hop_first, j_last))
        if rows:
            self._run_vad(list(rows.values()), windows, audio)
        for i, key, hop_first, j_last in wants:
            out[i] = _smoothed_max(rows[key].probs, hop_first, j_last)
        return out

    def _run_vad(
        self, rows: list[_VadRow], windows: Sequence[Window], audio: Sequence[Samples]
    ) -> None:
        """Advance each row's silero-vad run to its last chunk, batched across rows."""
        import torch

        im = self._vad._model
        chunks: list[Array] = []
        new_index: dict[tuple[Any, int], int] = {}
        cached: list[Any] = []
        cached_index: dict[tuple[Any, int], int] = {}
        active: list[tuple[_VadRow, list[int]]] = []
        for r, row in enumerate(rows):
            row.probs = dict(row.run.probs) if row.run is not None else {}
            if row.begin > row.j_last:
                continue
            state = self._cache.get(row.stream) if row.stream is not None else None
            owner: Any = row.stream if state is not None else ("row", r)
            w, a = windows[row.source], audio[row.source]
            start = w.end - a.size
            table_rows: list[int] = []
            for j in range(row.begin, row.j_last + 1):
                key = (owner, j)
                if state is not None and j in state.enc:
                    if key not in cached_index:
                        cached_index[key] = len(cached)
                        cached.append(state.enc[j])
                    table_rows.append(-1 - cached_index[key])
                else:
                    if key not in new_index:
                        lo = j * VAD_CHUNK - VAD_CONTEXT - start
                        new_index[key] = len(chunks)
                        chunks.append(a[lo : lo + VAD_CHUNK + VAD_CONTEXT])
                    table_rows.append(new_index[key])
            active.append((row, table_rows))
        self.stats["vad_chunks"] += len(chunks)
        if not active:
            return
        with torch.inference_mode():
            new_enc = (
                im.encoder(im.stft(torch.from_numpy(np.stack(chunks)))).squeeze(-1)
                if chunks
                else torch.zeros((0, 128))
            )
            for (owner, j), k in new_index.items():
                state = self._cache.get(owner) if isinstance(owner, str) else None
                if state is not None:
                    # A copy, so the cache does not keep the whole batch's tensor alive.
                    state.enc[j] = new_enc[k].clone()
            parts = [new_enc]
            if cached:
                parts.append(torch.stack(cached))
            parts.append(torch.zeros((1, 128)))
            table = torch.cat(parts)
            blank = table.shape[0] - 1
            steps = max(len(t) for _, t in active)
            index = torch.full((len(active), steps), blank, dtype=torch.long)
            mask = torch.zeros((len(active), steps, 1), dtype=torch.bool)
            h = torch.zeros((len(active), 128))
            c = torch.zeros((len(active), 128))
            for r, (row, table_rows) in enumerate(active):
                pad = steps - len(table_rows)
                # Negative entries point into the cached encodings, after the new ones.
                index[r, pad:] = torch.tensor(
                    [k if k >= 0 else len(chunks) - 1 - k for k in table_rows], dtype=torch.long
                )
                mask[r, pad:] = True
                if row.run is not None:
                    h[r], c[r] = row.run.h, row.run.c
            feats = table[index]
            hs = []
            for s in range(steps):
                h2, c2 = im.decoder.rnn(feats[:, s], (h, c))
                h = torch.where(mask[:, s], h2, h)
                c = torch.where(mask[:, s], c2, c)
                hs.append(h)
            probs = im.decoder.decoder(torch.stack(hs, 1).reshape(-1, 128, 1))
            probs_np = probs.reshape(len(active), steps).numpy()
            for r, (row, table_rows) in enumerate(active):
                got = probs_np[r, steps - len(table_rows) :].tolist()
                row.probs.update(zip(range(row.begin, row.j_last + 1), got, strict=True))
                self._store_vad(row, h[r].clone(), c[r].clone())

    def _store_vad(self, row: _VadRow, h: Any, c: Any) -> None:
        """Keep a stream's VAD run for its anchor, dropping older anchors and chunks."""
        state = self._cache.get(row.stream) if row.stream is not None else None
        if state is None:
            return
        keep = {j: p for j, p in row.probs.items() if j > row.j_last - 2 * VAD_ANCHOR}
        state.vad[row.anchor] = VadRun(row.j_last, h, c, keep)
        for anchor in [a for a in state.vad if a < row.anchor - VAD_ANCHOR]:
            del state.vad[anchor]
        oldest = min(state.vad)
        for j in [j for j in state.enc if j < oldest]:
            del state.enc[j]
