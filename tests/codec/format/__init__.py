"""Tests of mdlcodec/codec/format."""
