"""Turns openapi/intakeq-partner.yaml into src/intakeq_partner/_generated with openapi-python-client."""
