"""The dashboard service: a browser app that renders an organisation's charts live, the
UI for its commands, and a read API (HTTP/JSON, OpenAPI) that serves it and anyone else.

It is the reference downstream subscriber of ``chart-configs.<org>``: a person logs in as
an organisation with that organisation's Kafka password, and the session's Kafka clients
act as the organisation's principal, so the broker itself keeps each session to its own
topics. Its database reads go through the application role and name the organisation in
every query.
"""
