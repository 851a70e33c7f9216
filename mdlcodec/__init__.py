"""mdlcodec: sparse autoencoders as real codecs, and MDL selection of SAEs."""

__version__ = "0.1.0"
