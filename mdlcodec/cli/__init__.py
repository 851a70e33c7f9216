"""The ``mdlcodec`` command (click): one module per group of subcommands, registered in ``main``.
The only layer that prints, exits or names a flag; may import every other layer."""
