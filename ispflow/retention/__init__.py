"""Retention (deleting what is past its period) and storage statistics: plain jobs, no Flask."""
