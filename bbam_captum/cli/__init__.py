"""The ``bbam-captum`` command line."""
