"""landing: Nginx moves the bytes, Python keeps the books."""
