"""The transcript store stage: every final in SQLite, searchable, with retention (issue 13)."""
