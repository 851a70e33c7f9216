"""Tests of mdlcodec/measurement."""
