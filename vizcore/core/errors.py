"""Exceptions that pages catch, in a module without heavy imports (no torch), so the first page
can name them without paying for what raises them."""


class DataUnavailable(RuntimeError):
    """A domain's files are absent and cannot be downloaded; the message says what to do."""


class DomainMismatch(ValueError):
    """Source and target domains do not have the same classes; the message lists both."""
