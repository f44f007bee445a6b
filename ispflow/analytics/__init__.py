"""Traffic analytics: roll-ups kept by a periodic job, bandwidth series with the 95th percentile,
top reports and usage for billing. Free of Flask."""
