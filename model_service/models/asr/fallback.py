"""`FallbackRecognizer`: the phrase grammar first, an open-vocabulary recogniser for the rest.

The embedded recogniser is fast and exact on the sentences Home Assistant expects, and now
answers no text for speech that does not fit them. With Whisper or the audio LM loaded as
well (`--asr-fallback`), that speech is not lost: it goes to the open-vocabulary recogniser,
and so do languages the grammar cannot speak and requests without phrases (its general
language model is far weaker than either).
"""

from __future__ import annotations

from collections.abc import Sequence

from model_service.arrays import Samples
from model_service.models.asr.base import (
    AsrInfo,
    SpeechRecognizer,
    Transcript,
    UnsupportedLanguageError,
    resolve_language,
)


class FallbackRecognizer:
    """A phrase-grammar recogniser backed by an open-vocabulary one."""

    def __init__(self, grammar: SpeechRecognizer, open_vocabulary: SpeechRecognizer) -> None:
        """`grammar` must take phrases; `open_vocabulary` hears everything else."""
        self.grammar = grammar
        self.open_vocabulary = open_vocabulary
        languages = dict.fromkeys((*grammar.info.languages, *open_vocabulary.info.languages))
        self.info = AsrInfo(
            name=f"{grammar.info.name} + {open_vocabulary.info.name}",
            backend=grammar.info.backend,
            languages=tuple(languages),
            device=open_vocabulary.info.device,
            phrases=True,
            extra={**grammar.info.extra, "fallback": open_vocabulary.info.as_dict()},
        )

    async def start(self) -> None:
        """Start both."""
        await self.grammar.start()
        await self.open_vocabulary.start()

    async def stop(self) -> None:
        """Stop both."""
        try:
            await self.grammar.stop()
        finally:
            await self.open_vocabulary.stop()

    def _grammar_speaks(self, language: str | None) -> bool:
        try:
            resolve_language(language, self.grammar.info.languages, None)
        except UnsupportedLanguageError:
            return False
        return True

    async def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """The grammar's phrase when the speech fits one, else the open recogniser's text."""
        if phrases and self._grammar_speaks(language):
            result = await self.grammar.transcribe(samples, language=language, phrases=phrases)
            if result.text or samples.size == 0:
                return result
        return await self.open_vocabulary.transcribe(samples, language=language)
