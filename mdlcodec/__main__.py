from mdlcodec.cli.main import cli

cli()
