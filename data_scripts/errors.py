"""The failures the fetch tool expects, each shown to the user as one sentence without a traceback."""


class FetchError(Exception):
    """An expected failure; str(error) is a complete sentence naming the file and what to do."""


class SourceUnavailableError(FetchError):
    """Neither the mirror folder nor any URL had the file."""


class ChecksumError(FetchError):
    """A file was found but its contents do not match the published checksum."""


class MirrorError(FetchError):
    """The mirror folder is missing or cannot be read."""
