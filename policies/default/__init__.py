"""The default Cedar policy pack (schema, policies, cases), shipped as package data."""
