"""napari-karyo: karyotyping of metaphase spreads in napari."""

__version__ = "0.1.0"
