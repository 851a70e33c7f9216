"""Tests of mdlcodec/codec/rate."""
