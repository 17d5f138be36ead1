"""Sans-io decision code: stdlib and attrs only; time and randomness come in as arguments.

Nothing here imports trio, sqlite3, cattrs, time, random or logging
(tests/test_layering.py checks it).
"""
