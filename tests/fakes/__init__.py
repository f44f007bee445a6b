"""Protocol-faithful fakes of the routers ispflow configures, served on 127.0.0.1 for tests."""
