"""The security view: findings (scans, brute force, unusual outbound volume, beaconing,
unexpected countries) detected in the stored flows, an hour at a time. Free of Flask."""
