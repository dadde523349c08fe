"""Karyogram archives as labelled data: match each chromosome of a finished karyogram back to its spread."""
