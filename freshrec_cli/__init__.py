"""The freshrec command line: the entry point above flows/, tasks/ and the core."""
