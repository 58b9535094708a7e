"""Exceptions with messages meant for the scientist running the tool."""


class InputError(ValueError):
    """Input data that cannot be used as it is: the message names the file, variable and time."""
