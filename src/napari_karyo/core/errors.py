"""Errors a user can cause. Each message names the file and the fix; the CLI prints it and exits 2."""


class KaryoError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class ImageReadError(KaryoError):
    pass


class ModelFileError(KaryoError):
    pass


class CancelledError(KaryoError):
    pass


class LesionError(KaryoError):
    """Nothing (or too little) annotated to train on, or annotations / models that do not fit the stack."""


class KaryogramImportError(KaryoError):
    """A karyogram that cannot be read, or that does not belong to its spread."""
