"""A medical insurance centre simulator (医保中心)."""
