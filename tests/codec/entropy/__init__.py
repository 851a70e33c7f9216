"""Tests of mdlcodec/codec/entropy."""
