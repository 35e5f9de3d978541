"""Event and record contracts of ccpulse: the only shapes that cross a topic or a table."""
