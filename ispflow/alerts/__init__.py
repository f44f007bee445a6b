"""Alerts: rules evaluated by a periodic job, one alert per incident, delivered by e-mail,
webhook and a signal to the host panel. Free of Flask."""
